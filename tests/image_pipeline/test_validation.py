"""validate(): the key and size checks, one download of the right version, one decode."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from botocore.exceptions import EndpointConnectionError

from image_pipeline.aws import client
from image_pipeline.errors import ImageRejected, Superseded
from image_pipeline.models import SourceObject
from image_pipeline.settings import get_settings
from image_pipeline.sources import head_source
from image_pipeline.validation import validate
from tests import images


@pytest.fixture
def uploaded(aws_stack: str) -> Callable[[bytes], SourceObject]:
    """Put bytes in the emulator's uploads bucket and describe them as the run would."""

    def put(data: bytes, key: str = "uploads/validate/x.png") -> SourceObject:
        bucket = get_settings().uploads_bucket
        client("s3").put_object(Bucket=bucket, Key=key, Body=data)
        return head_source(bucket, key, None)

    return put


def test_validate_identifies_by_content_not_name(uploaded) -> None:
    image = validate(uploaded(images.gif()))  # named .png: content decides
    assert image.format == "GIF"


@pytest.mark.parametrize("change", ["reupload", "delete"])
def test_validate_of_a_changed_object_is_superseded(uploaded, change: str) -> None:
    source = uploaded(images.png())
    if change == "reupload":
        client("s3").put_object(Bucket=source.bucket, Key=source.key, Body=images.gif())
    else:
        client("s3").delete_object(Bucket=source.bucket, Key=source.key)

    with pytest.raises(Superseded):
        validate(source)


def test_validate_lets_aws_errors_through_for_the_retry_policy(uploaded, configure) -> None:
    source = uploaded(images.png())
    configure(aws_endpoint_url="http://127.0.0.1:9")  # nothing listens there

    with pytest.raises(EndpointConnectionError):
        validate(source)


def test_validate_refuses_by_size_before_downloading(uploaded, configure) -> None:
    source = uploaded(images.png())
    configure(max_file_bytes=source.size - 1, aws_endpoint_url="http://127.0.0.1:9")

    with pytest.raises(ImageRejected) as caught:  # not a connection error: no download tried
        validate(source)

    assert caught.value.error_type == "FileTooLarge"


def test_validate_passes_a_box_covering_every_thumbnail_size(uploaded, configure) -> None:
    configure(thumbnail_sizes="300x50,50x300")

    pixels = validate(uploaded(images.jpeg((1600, 1600)))).pixels

    assert pixels.size == (400, 400)  # covers 300x300; 1/4 scale, not 1/8 (200x200)
