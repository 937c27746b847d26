"""Helpers every suite shares: fresh keys, the task runs of a finished flow run, and the SNS
notices as a subscriber sees them."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import TaskRun


def unique_key(name: str, group: str = "") -> str:
    """A key under the uploads prefix that no other test uses."""
    return f"uploads/{group}{uuid.uuid4().hex[:8]}/{name}"


def task_runs(state: Any) -> dict[str, TaskRun]:
    """The task runs of the flow run that ended in `state`, by task name, as the server
    has recorded them so far (task states arrive as events: wait for the one you expect)."""
    with get_client(sync_client=True) as prefect:
        runs = prefect.read_task_runs(
            flow_run_filter=FlowRunFilter(
                id=FlowRunFilterId(any_=[state.state_details.flow_run_id])
            )
        )
    return {run.name.rsplit("-", 1)[0]: run for run in runs}


class Notices:
    """An SQS queue subscribed to the topic: the notices published since it was made."""

    def __init__(self, sqs: Any, sns: Any, topic_arn: str) -> None:
        self.sqs, self.sns = sqs, sns
        self.queue_url = sqs.create_queue(QueueName=f"notices-{uuid.uuid4().hex[:8]}")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])
        self.subscription = sns.subscribe(
            TopicArn=topic_arn, Protocol="sqs", Endpoint=arn["Attributes"]["QueueArn"]
        )["SubscriptionArn"]
        self.received: list[dict[str, Any]] = []

    def drain(self, wait: int = 0) -> list[dict[str, Any]]:
        """What arrived since the last drain, waiting up to `wait` s for each batch."""
        new: list[dict[str, Any]] = []
        while batch := self.sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait
        ).get("Messages"):
            for message in batch:
                new.append(json.loads(message["Body"]))
                self.sqs.delete_message(
                    QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"]
                )
        self.received += new
        return new

    def about(self, key: str) -> list[dict[str, Any]]:
        return [n for n in self.received if n["MessageAttributes"]["imageId"]["Value"] == key]

    def wait_for(
        self, key: str, count: int = 1, *, timeout: float = 10, settle: bool = True
    ) -> list[dict[str, Any]]:
        """The notices about `key` (its imageId) once `count` arrived; with `settle`, after
        one more second in which nothing arrived, so that a duplicate would show."""
        deadline = time.monotonic() + timeout
        while len(self.about(key)) < count and time.monotonic() < deadline:
            self.drain(wait=1)
        while settle and self.drain(wait=1):
            pass
        return self.about(key)

    def close(self) -> None:
        self.sns.unsubscribe(SubscriptionArn=self.subscription)
        self.sqs.delete_queue(QueueUrl=self.queue_url)
