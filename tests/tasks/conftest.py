"""Work for one step: an object uploaded to MiniStack, as the step before would hand it on."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from image_pipeline.aws import client
from image_pipeline.models import ImageWork
from image_pipeline.settings import get_settings
from image_pipeline.sources import head_source

MakeWork = Callable[..., ImageWork]


@pytest.fixture
def work_for(aws_stack: str) -> MakeWork:
    """work_for(data, name="x.png"): upload `data` under a fresh key, and its ImageWork."""

    def make(data: bytes, name: str = "x.png") -> ImageWork:
        bucket = get_settings().uploads_bucket
        key = f"uploads/steps-{uuid.uuid4().hex[:8]}/{name}"
        client("s3").put_object(Bucket=bucket, Key=key, Body=data)
        return ImageWork(source=head_source(bucket, key, None), run_id=str(uuid.uuid4()))

    return make
