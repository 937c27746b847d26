from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from image_pipeline.aws import client
from image_pipeline.settings import get_settings
from tests.support import Notices


@pytest.fixture
def notifications(aws_stack: str) -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """An SQS queue subscribed to the topic; calling the fixture drains what arrived."""
    queue = Notices(client("sqs"), client("sns"), aws_stack)
    try:
        yield lambda: queue.drain(wait=1)
    finally:
        queue.close()


@pytest.fixture
def upload(aws_stack: str) -> Callable[[str, bytes], str]:
    """Put an object in the uploads bucket; returns its ETag as EventBridge reports it."""

    def put(key: str, data: bytes) -> str:
        response = client("s3").put_object(Bucket=get_settings().uploads_bucket, Key=key, Body=data)
        return response["ETag"].strip('"')

    return put
