from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tasks.aws import client
from tasks.settings import get_settings


@pytest.fixture
def notifications(aws_stack: str) -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """An SQS queue subscribed to the topic; calling the fixture drains what arrived."""
    sqs, sns = client("sqs"), client("sns")
    queue_url = sqs.create_queue(QueueName=f"notices-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    subscription = sns.subscribe(TopicArn=aws_stack, Protocol="sqs", Endpoint=queue_arn)

    def drain() -> list[dict[str, Any]]:
        messages = []
        while batch := sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        ).get("Messages"):
            for message in batch:
                messages.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        return messages

    yield drain
    sns.unsubscribe(SubscriptionArn=subscription["SubscriptionArn"])
    sqs.delete_queue(QueueUrl=queue_url)


@pytest.fixture
def upload(aws_stack: str) -> Callable[[str, bytes], str]:
    """Put an object in the uploads bucket; returns its ETag as EventBridge reports it."""

    def put(key: str, data: bytes) -> str:
        response = client("s3").put_object(Bucket=get_settings().uploads_bucket, Key=key, Body=data)
        return response["ETag"].strip('"')

    return put
