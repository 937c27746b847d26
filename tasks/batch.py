"""Many images inside one task: the backfill's unit of work.

The same task functions as `process-image`, called as plain functions (`.fn`), so that
a thousand images cost a few dozen task runs instead of thousands. Each image still
ends with its own item: COMPLETED, or FAILED with the step and the reason.
"""

from __future__ import annotations

from typing import Literal

from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel

from tasks import record
from tasks.aws import is_transient
from tasks.errors import ImageRejected, Superseded, describe_error
from tasks.labels import detect_labels
from tasks.metadata import extract_metadata
from tasks.models import SourceObject
from tasks.retry import TRANSIENT_RETRIES
from tasks.thumbnails import make_thumbnails
from tasks.validate import validate


class Outcome(BaseModel):
    key: str
    status: Literal["COMPLETED", "FAILED", "ALREADY_DONE", "SUPERSEDED"]
    error_type: str | None = None
    failed_step: str | None = None


def process_one(source: SourceObject, run_id: str, *, force: bool = False) -> Outcome:
    step = "claim-record"
    try:
        if record.claim_record.fn(source, run_id, force=force):
            return Outcome(key=source.key, status="ALREADY_DONE")
        step = "validate"
        image = validate.fn(source)
        step = "thumbnails"
        thumbnails = make_thumbnails.fn(source, image, run_id)
        step = "metadata"
        metadata = extract_metadata.fn(source, image)
        step = "labels"
        labels = detect_labels.fn(source, image, thumbnails)
        step = "store"
        record.store_record.fn(source, run_id, metadata, thumbnails, labels)
    except Superseded:
        return Outcome(key=source.key, status="SUPERSEDED")
    except Exception as exc:  # recorded on the item and in the outcome, never dropped
        if is_transient(exc):
            raise  # the batch task retries; images already done are skipped the next time
        error_type, message = describe_error(exc)
        record.mark_failed(
            source.bucket,
            source.key,
            source.etag,
            run_id,
            error_type=error_type,
            error_message=message,
            failed_step=step,
            validation_failed=isinstance(exc, ImageRejected),
        )
        return Outcome(key=source.key, status="FAILED", error_type=error_type, failed_step=step)
    return Outcome(key=source.key, status="COMPLETED")


@task(name="process-batch", **TRANSIENT_RETRIES, cache_policy=NO_CACHE, persist_result=False)
def process_batch(sources: list[SourceObject], run_id: str, force: bool = False) -> list[Outcome]:
    return [process_one(source, run_id, force=force) for source in sources]
