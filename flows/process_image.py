"""process-image: one uploaded image, from S3 object to DynamoDB record.

Reads like the original state machine: validate → thumbnails → metadata → labels →
store. Each step is a task with its own retry policy; the flow only calls them.
The hooks record failures and send the SNS notices.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.context import SyncClientContext
from prefect.runtime import flow_run

from flows.hooks import notify_success, record_crash, record_failure
from tasks.errors import Superseded
from tasks.labels import detect_labels
from tasks.metadata import extract_metadata
from tasks.record import claim_record, store_record
from tasks.report import publish_report
from tasks.source import describe_source
from tasks.thumbnails import make_thumbnails
from tasks.validate import validate


@flow(
    name="process-image",
    flow_run_name="{key}",
    on_completion=[notify_success],
    on_failure=[record_failure],
    on_crashed=[record_crash],
    persist_result=False,
)
async def process_image(bucket: str, key: str, etag: str | None = None) -> dict[str, Any]:
    """Process s3://`bucket`/`key`; `etag` names the version the triggering event saw.

    Async only so that Prefect does not join a sync flow's heartbeat thread at the end
    (about 0.8 s a run); the tasks are plain functions, called one after another. Sync
    tasks in an async flow would each open a Prefect client of their own (an SSL context
    and a version check, about 25 ms a task), so they share one.
    """
    with SyncClientContext.get_or_create():
        return _run_steps(bucket, key, etag)


def _run_steps(bucket: str, key: str, etag: str | None) -> dict[str, Any]:
    run_id = flow_run.get_id()
    try:
        source = describe_source(bucket, key, etag)
        if finished := claim_record(source, run_id):
            get_run_logger().info("ETag %s of %s is already processed.", source.etag, key)
            return finished
        image = validate(source)
        thumbnails = make_thumbnails(source, image, run_id)
        metadata = extract_metadata(source, image)
        labels = detect_labels(source, image, thumbnails)
        item = store_record(source, run_id, metadata, thumbnails, labels)
    except Superseded as exc:
        get_run_logger().info("Nothing to do: %s", exc)
        return {"ImageKey": key, "overall_processing_status": "SUPERSEDED", "reason": str(exc)}
    publish_report(item)
    return item
