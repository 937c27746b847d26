"""Many images in one flow run: the unit of work of a burst and of the backfill.

`process_upload` is one image as a task run named by its key, whose steps
(`tasks.pipeline.STEPS`) are task runs of their own, each with its retries; the
`process-images` flow maps it over a batch of uploads. `process_batch` is the backfill's
cheaper form: many images in one task run, the same steps called as plain functions
(`.fn`). Either way each image ends with its own item: COMPLETED, or FAILED with the step
and the reason.
"""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from image_pipeline import records
from image_pipeline.aws import is_transient
from image_pipeline.errors import Superseded, describe_error, log_error, run_logger
from image_pipeline.models import ImageWork, SourceObject, Upload
from image_pipeline.outcomes import Outcome
from image_pipeline.report import smallest_thumbnail
from tasks.pipeline import STEPS, Step, is_done
from tasks.policies import TRANSIENT_RETRIES
from tasks.record import claim_upload

COMPLETED, FAILED = records.COMPLETED, records.FAILED
ALREADY_DONE, SUPERSEDED = "ALREADY_DONE", "SUPERSEDED"


def process_one(work: ImageWork, *, inline: bool, steps: tuple[Step, ...] = STEPS) -> Outcome:
    """Walk the steps for one image; its outcome, with a failure recorded on its item.

    `inline` calls the steps as plain functions and lets transient errors through, so that
    the batch task around them retries; otherwise each step is a task run that has already
    retried them, and what it raises is the image's failure.
    """
    key = work.source.key
    for step in steps:
        try:
            work = step.run(work, inline=inline)
        except Superseded as exc:
            return _superseded(key, exc)
        except Exception as exc:  # recorded on the item and in the outcome, never dropped
            if inline and is_transient(exc):
                raise
            return _record_failure(work, step, exc)
        if is_done(work):
            return _finished(work, COMPLETED if step is STEPS[-1] else ALREADY_DONE)
    raise AssertionError("the last step stores the item")


def _finished(work: ImageWork, action: str) -> Outcome:
    assert work.item is not None
    outcome = Outcome(
        key=work.source.key,
        action=action,
        thumbnail=smallest_thumbnail(work.item.get("thumbnails", {})),
    ).with_moderation(work.moderation)
    # A quarantined image is not shown inline in the run's report.
    return outcome.model_copy(update={"thumbnail": None}) if outcome.quarantined else outcome


def _superseded(key: str, reason: Superseded) -> Outcome:
    run_logger(__name__).info("%s: nothing to do: %s", key, reason)
    return Outcome(key=key, action=SUPERSEDED)


def _record_failure(work: ImageWork, step: Step, exc: Exception) -> Outcome:
    source = work.source
    return _fail(source.bucket, source.key, source.etag, work.run_id, step, exc)


def _fail(
    bucket: str, key: str, etag: str | None, run_id: str, step: Step, exc: Exception
) -> Outcome:
    """FAILED on the image's item, the error in the run's log; the image's outcome."""
    error_type, message = describe_error(exc)
    log_error(run_logger(__name__), exc, f"{key} failed at step {step.name}")
    records.mark_failed(
        bucket,
        key,
        etag,
        run_id,
        error_type=error_type,
        error_message=message,
        failed_step=step.name,
        failure_fields=step.failure_fields(exc),
    )
    return Outcome(
        key=key, action=FAILED, error_type=error_type, reason=message, failed_step=step.name
    )


@task(
    name="image",
    task_run_name="{key}",
    cache_policy=NO_CACHE,
    persist_result=False,
)
def process_upload(bucket: str, key: str, etag: str | None, run_id: str) -> Outcome:
    """One uploaded image, its steps as task runs of their own (retried each)."""
    claim = STEPS[0]
    try:
        work = claim_upload(Upload(bucket=bucket, key=key, etag=etag), run_id)
    except Superseded as exc:
        return _superseded(key, exc)
    except Exception as exc:  # S3 or DynamoDB unreachable after the retries: the image's failure
        return _fail(bucket, key, etag, run_id, claim, exc)
    if is_done(work):
        return _finished(work, ALREADY_DONE)
    return process_one(work, inline=False, steps=STEPS[1:])


@task(name="process-batch", **TRANSIENT_RETRIES, cache_policy=NO_CACHE, persist_result=False)
def process_batch(sources: list[SourceObject], run_id: str, force: bool = False) -> list[Outcome]:
    return [
        process_one(ImageWork(source=source, run_id=run_id, force=force), inline=True)
        for source in sources
    ]
