"""process-image: one uploaded image, from S3 object to DynamoDB record.

Reads like the original state machine: the steps of `tasks.pipeline.STEPS` (claim →
validate → thumbnails → metadata → labels → store), each a task with its own retry
policy, walked in order until the record is final. The hooks record failures and send
the SNS notices.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.context import SyncClientContext
from prefect.runtime import flow_run

from flows.hooks import notify_success, record_crash, record_failure
from image_pipeline.errors import Superseded
from image_pipeline.models import ImageWork
from tasks.pipeline import STEPS, is_done
from tasks.report import publish_report
from tasks.source import describe_source


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
) -> dict[str, Any]:
    """Process s3://`bucket`/`key`; `etag` names the version the triggering event saw.
    `force` redoes a version already COMPLETED (reprocess with `?force=true`).

    Async only so that Prefect does not join a sync flow's heartbeat thread at the end;
    the tasks are plain functions, called one after another. Sync tasks in an async flow
    would each open a Prefect client of their own, so they share one.
    """
    with SyncClientContext.get_or_create():
        return _run_steps(bucket, key, etag, force)


def _run_steps(bucket: str, key: str, etag: str | None, force: bool) -> dict[str, Any]:
    try:
        source = describe_source(bucket, key, etag)
        work = ImageWork(source=source, run_id=flow_run.get_id(), force=force)
        for step in STEPS:
            work = step.task(work)
            if is_done(work):
                break
    except Superseded as exc:
        get_run_logger().info("Nothing to do: %s", exc)
        return {"ImageKey": key, "overall_processing_status": "SUPERSEDED", "reason": str(exc)}
    assert work.item is not None
    if step is not STEPS[-1]:
        get_run_logger().info("ETag %s of %s is already processed.", work.source.etag, key)
        return work.item
    publish_report(work.item)
    return work.item
