"""Many images inside one task: the backfill's unit of work.

The same steps as `process-image` (`tasks.pipeline.STEPS`), called as plain functions
(`.fn`), so that a thousand images cost a few dozen task runs instead of thousands. Each
image still ends with its own item: COMPLETED, or FAILED with the step and the reason.
"""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from image_pipeline import records
from image_pipeline.aws import is_transient
from image_pipeline.errors import Superseded, describe_error, log_error, run_logger
from image_pipeline.models import ImageWork, SourceObject
from image_pipeline.outcomes import Outcome
from tasks.pipeline import STEPS, Step, is_done
from tasks.policies import TRANSIENT_RETRIES

COMPLETED, FAILED = records.COMPLETED, records.FAILED
ALREADY_DONE, SUPERSEDED = "ALREADY_DONE", "SUPERSEDED"


def process_one(source: SourceObject, run_id: str, *, force: bool = False) -> Outcome:
    work = ImageWork(source=source, run_id=run_id, force=force)
    for step in STEPS:
        try:
            work = step.task.fn(work)
        except Superseded:
            return Outcome(key=source.key, action=SUPERSEDED)
        except Exception as exc:  # recorded on the item and in the outcome, never dropped
            if is_transient(exc):
                raise  # the batch task retries; images already done are skipped the next time
            return _record_failure(work, step, exc)
        if is_done(work):
            return Outcome(key=source.key, action=COMPLETED if step is STEPS[-1] else ALREADY_DONE)
    raise AssertionError("the last step stores the item")


def _record_failure(work: ImageWork, step: Step, exc: Exception) -> Outcome:
    error_type, message = describe_error(exc)
    source = work.source
    log_error(run_logger(__name__), exc, f"{source.key} failed at step {step.name}")
    records.mark_failed(
        source.bucket,
        source.key,
        source.etag,
        work.run_id,
        error_type=error_type,
        error_message=message,
        failed_step=step.name,
        failure_fields=step.failure_fields(exc),
    )
    return Outcome(key=source.key, action=FAILED, error_type=error_type, failed_step=step.name)


@task(name="process-batch", **TRANSIENT_RETRIES, cache_policy=NO_CACHE, persist_result=False)
def process_batch(sources: list[SourceObject], run_id: str, force: bool = False) -> list[Outcome]:
    return [process_one(source, run_id, force=force) for source in sources]
