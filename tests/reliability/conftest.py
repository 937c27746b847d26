"""Shared pieces of the reliability suite: uploads, notices, runs and their task runs."""

from __future__ import annotations

import dataclasses
import io
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.retries.standard import ExponentialBackoff
from PIL import Image
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.client.schemas.objects import Log

import flows.process_image
from image_pipeline import notify
from image_pipeline.aws import client
from image_pipeline.records import read_item
from image_pipeline.settings import get_settings
from tasks.pipeline import STEPS
from tests import support
from tests.flows.runner import run_process_image
from tests.support import Notices


def unique_key(name: str) -> str:
    return support.unique_key(name, "rel-")


def put_upload(key: str, data: bytes) -> str:
    """Put an object in the uploads bucket; its ETag as EventBridge reports it."""
    response = client("s3").put_object(Bucket=get_settings().uploads_bucket, Key=key, Body=data)
    return response["ETag"].strip('"')


def run(
    key: str, data: bytes | None = None, *, etag: str | None = None
) -> tuple[Any, dict[str, Any] | None]:
    """Upload `data` (unless None) and run process-image for that version (for `etag`, or
    the object as it is now when both are None): the final state and the item."""
    if data is not None:
        etag = put_upload(key, data)
    state = run_process_image(get_settings().uploads_bucket, key, etag, return_state=True)
    return state, read_item(key)


def thumbnail_objects(key: str) -> dict[str, Image.Image]:
    """The thumbnails stored for `key`, by object key, loaded."""
    s3, bucket = client("s3"), get_settings().thumbnails_bucket
    listing = s3.list_objects_v2(Bucket=bucket, Prefix=f"thumbnails/{key}/")
    found = {}
    for obj in listing.get("Contents", []):
        data = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
        image = Image.open(io.BytesIO(data))
        image.load()
        found[obj["Key"]] = image
    return found


def run_logs(*run_ids: Any) -> list[Log]:
    """The logs of these flow runs (their tasks' included) that reached the Prefect API;
    they arrive in batches, so wait for the line you expect (`wait_until`)."""
    with get_client(sync_client=True) as prefect:
        return prefect.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=list(run_ids)))
        )


def wait_until(condition: Callable[[], Any], *, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout} s waiting for {what}")
        time.sleep(0.05)
    return result


@pytest.fixture
def notices(aws_stack: str) -> Iterator[Notices]:
    queue = Notices(client("sqs"), client("sns"), aws_stack)
    try:
        yield queue
    finally:
        queue.close()


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same retry policies (count and condition) without the waits, for outages that
    outlast every retry: the flow's tasks retry at once, notices publish again at once, and
    botocore's own attempts follow each other without backoff."""
    monkeypatch.setattr(ExponentialBackoff, "delay_amount", lambda self, context: 0)
    steps = tuple(
        dataclasses.replace(step, task=step.task.with_options(retry_delay_seconds=0))
        for step in STEPS
    )
    monkeypatch.setattr(flows.process_image, "STEPS", steps)
    claim = flows.process_image.claim_upload
    monkeypatch.setattr(
        flows.process_image, "claim_upload", claim.with_options(retry_delay_seconds=0)
    )
    monkeypatch.setattr(notify, "PUBLISH_RETRY_DELAYS", (0.0, 0.0, 0.0))
