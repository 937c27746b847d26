"""process-image: one uploaded image, from S3 object to DynamoDB record.

Reads like the original state machine: the steps of `tasks.pipeline.STEPS` (claim →
validate → thumbnails → metadata → labels → store), each a task with its own retry
policy, walked in order until the record is final. Every run ends with a report artifact,
a failed one included. The hooks record failures and send the SNS notices.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.context import SyncClientContext
from prefect.runtime import flow_run
from prefect.states import Failed, State

from flows.hooks import notify_success, record_crash, record_failure
from image_pipeline import labels
from image_pipeline.errors import ImageRejected, Superseded
from image_pipeline.models import Upload
from tasks.pipeline import STEPS, is_done
from tasks.record import claim_upload
from tasks.report import publish_failure_report, publish_outcome_report, publish_report


@flow(
    name="process-image",
    flow_run_name="{key}",
    on_completion=[notify_success],
    on_failure=[record_failure],
    on_crashed=[record_crash],
    persist_result=False,
)
async def process_image(
    bucket: str, key: str, etag: str | None = None, force: bool = False
) -> dict[str, Any] | State:
    """Process s3://`bucket`/`key`; `etag` names the version the triggering event saw.
    `force` redoes a version already COMPLETED (reprocess with `?force=true`).

    Async only so that Prefect does not join a sync flow's heartbeat thread at the end;
    the tasks are plain functions, called one after another. Sync tasks in an async flow
    would each open a Prefect client of their own, so they share one.
    """
    labels.prepare()
    with SyncClientContext.get_or_create():
        return _run_steps(bucket, key, etag, force)


def _run_steps(bucket: str, key: str, etag: str | None, force: bool) -> dict[str, Any] | State:
    step = STEPS[0]
    try:
        work = claim_upload(Upload(bucket=bucket, key=key, etag=etag), flow_run.get_id(), force)
        for step in STEPS[1:]:
            if is_done(work):  # the claim found this version done
                break
            work = step.run(work)
    except Superseded as exc:
        get_run_logger().info("Nothing to do: %s", exc)
        publish_outcome_report(key, "SUPERSEDED", str(exc), return_state=True)
        return {"ImageKey": key, "overall_processing_status": "SUPERSEDED", "reason": str(exc)}
    except ImageRejected as rejection:
        publish_failure_report(key, etag, rejection, step.name, return_state=True)
        # A bad upload is an expected outcome: the run ends Failed with one line naming the
        # error type and the reason, and no traceback. The hooks record and announce it.
        return Failed(message=rejection.summary, data=rejection)
    except Exception as exc:
        # Unexpected: raised as it is, so Prefect logs its traceback; the report says where.
        publish_failure_report(key, etag, exc, step.name, return_state=True)
        raise
    assert work.item is not None
    if step is not STEPS[-1]:
        get_run_logger().info("ETag %s of %s is already processed.", work.source.etag, key)
    # The image is stored: a report Prefect refuses shows as a failed report task run (with
    # its error in the log), not as a failed image with a failure notice.
    publish_report(work.item, return_state=True)
    return work.item
