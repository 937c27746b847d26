"""Shared pieces of the reliability suite: uploads, notices, runs and their task runs."""

from __future__ import annotations

import io
import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.retries.standard import ExponentialBackoff
from PIL import Image
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import TaskRun

import flows.process_image
from tasks import notify
from tasks.aws import client
from tasks.record import read_item
from tasks.settings import get_settings
from tests.flows.runner import run_process_image


def unique_key(name: str) -> str:
    return f"uploads/rel-{uuid.uuid4().hex[:8]}/{name}"


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


def task_runs(state: Any) -> dict[str, TaskRun]:
    """The task runs of the flow run that ended in `state`, by task name."""
    with get_client(sync_client=True) as prefect:
        runs = prefect.read_task_runs(
            flow_run_filter=FlowRunFilter(
                id=FlowRunFilterId(any_=[state.state_details.flow_run_id])
            )
        )
    return {run.name.rsplit("-", 1)[0]: run for run in runs}


def wait_until(condition: Callable[[], Any], *, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout} s waiting for {what}")
        time.sleep(0.05)
    return result


class Notices:
    """An SQS queue subscribed to the topic: the notices published while the test runs."""

    def __init__(self, topic_arn: str) -> None:
        self.sqs = client("sqs")
        name = f"rel-notices-{uuid.uuid4().hex[:8]}"
        self.queue_url = self.sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])
        self.subscription = client("sns").subscribe(
            TopicArn=topic_arn, Protocol="sqs", Endpoint=arn["Attributes"]["QueueArn"]
        )["SubscriptionArn"]
        self.received: list[dict[str, Any]] = []

    def _receive(self, wait: int) -> int:
        batch = self.sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait
        ).get("Messages", [])
        for message in batch:
            self.received.append(json.loads(message["Body"]))
            self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return len(batch)

    def about(self, key: str) -> list[dict[str, Any]]:
        return [n for n in self.received if n["MessageAttributes"]["imageId"]["Value"] == key]

    def wait_for(
        self, key: str, count: int = 1, *, timeout: float = 10, settle: bool = True
    ) -> list[dict[str, Any]]:
        """The notices about `key` (its imageId) once `count` arrived; with `settle`, after
        one more second in which nothing arrived, so that a duplicate would show."""
        deadline = time.monotonic() + timeout
        while len(self.about(key)) < count and time.monotonic() < deadline:
            self._receive(wait=1)
        while settle and self._receive(wait=1):
            pass
        return self.about(key)

    def close(self) -> None:
        client("sns").unsubscribe(SubscriptionArn=self.subscription)
        self.sqs.delete_queue(QueueUrl=self.queue_url)


@pytest.fixture
def notices(aws_stack: str) -> Iterator[Notices]:
    queue = Notices(aws_stack)
    try:
        yield queue
    finally:
        queue.close()


# Every task process-image calls, by the name the flow module uses for it.
FLOW_TASKS = (
    "describe_source",
    "claim_record",
    "validate",
    "make_thumbnails",
    "extract_metadata",
    "detect_labels",
    "store_record",
)


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same retry policies (count and condition) without the waits, for outages that
    outlast every retry: the flow's tasks retry at once, notices publish again at once, and
    botocore's own attempts follow each other without backoff."""
    monkeypatch.setattr(ExponentialBackoff, "delay_amount", lambda self, context: 0)
    for name in FLOW_TASKS:
        task = getattr(flows.process_image, name)
        monkeypatch.setattr(flows.process_image, name, task.with_options(retry_delay_seconds=0))
    monkeypatch.setattr(notify, "PUBLISH_RETRY_DELAYS", (0.0, 0.0, 0.0))
