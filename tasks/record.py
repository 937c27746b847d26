"""The record steps: claim the image's item before the work, store the result after it."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from image_pipeline import records, sources
from image_pipeline.models import ImageWork, Upload
from tasks.policies import TRANSIENT_RETRIES


@task(name="claim-record", **TRANSIENT_RETRIES, cache_policy=NO_CACHE, persist_result=False)
def claim_record(work: ImageWork) -> ImageWork:
    """PROCESSING for this run; the finished item instead when this version is already done."""
    return work.having(item=records.claim(work.source, work.run_id, force=work.force))


# The same step for an upload known only by its event: the HEAD that finds the version the
# event is about (or `Superseded`) is part of the claim rather than a task run of its own,
# which would cost the orchestration more than the call.
@task(name="claim-record", **TRANSIENT_RETRIES, cache_policy=NO_CACHE, persist_result=False)
def claim_upload(upload: Upload, run_id: str, force: bool = False) -> ImageWork:
    """The upload's current version, claimed as `claim_record` claims it."""
    source = sources.head_source(upload.bucket, upload.key, upload.etag)
    return claim_record.fn(ImageWork(source=source, run_id=run_id, force=force))


@task(name="store", **TRANSIENT_RETRIES, cache_policy=NO_CACHE, persist_result=False)
def store_record(work: ImageWork) -> ImageWork:
    assert work.metadata is not None and work.labels is not None
    item = records.complete(
        work.source,
        work.run_id,
        work.metadata,
        list(work.thumbnails),
        work.labels,
        work.placeholder,
        work.fingerprint,
        moderation=work.moderation,
    )
    return work.having(item=item)
