"""The labels step against MiniStack's S3 and the stand-in Rekognition, via real boto3."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import boto3
import botocore.retries.standard
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from PIL import Image

from image_pipeline import aws
from image_pipeline.labels import OFF_REASON, detect_labels, detect_labels_with
from image_pipeline.models import DecodedImage, ImageWork, Labels, SourceObject, Thumbnail
from image_pipeline.settings import get_settings
from tasks.labels import detect_labels as labels_step
from tasks.policies import retry_transient
from tests.fakes.rekognition import FakeRekognition

RED = (200, 50, 50)  # the fake labels it "Red" at 55 + 44.5 * 150 / 255 = 81.176...


def encode(size: tuple[int, int], fmt: str, colour: tuple[int, int, int] = RED) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, fmt)
    return buffer.getvalue()


def put(bucket: str, key: str, data: bytes) -> None:
    aws.client("s3").put_object(Bucket=bucket, Key=key, Body=data)


def upload(key: str, data: bytes, *, size: int | None = None) -> SourceObject:
    """Store `data` as an upload; `size` pretends the object is bigger than it is."""
    put(get_settings().uploads_bucket, key, data)
    return SourceObject(
        bucket=get_settings().uploads_bucket,
        key=key,
        etag="etag",
        size=len(data) if size is None else size,
        last_modified=datetime.now(UTC),
    )


def decoded(fmt: str, width: int, height: int) -> DecodedImage:
    return DecodedImage(
        format=fmt,
        width=width,
        height=height,
        mode="RGB",
        frame_count=1,
        pixels=Image.new("RGB", (min(width, 64), min(height, 64)), RED),
    )


def thumbnail(key: str, size: tuple[int, int], fmt: str = "JPEG") -> tuple[Thumbnail, bytes]:
    data = encode(size, fmt)
    bucket = get_settings().thumbnails_bucket
    put(bucket, key, data)
    content_type = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}[fmt]
    thumb = Thumbnail(
        label=f"{size[0]}x{size[1]}",
        bucket=bucket,
        key=key,
        width=size[0],
        height=size[1],
        content_type=content_type,
    )
    return thumb, data


def assert_labels(labels: list[dict[str, Any]], expected: dict[str, float]) -> None:
    """Names in order; confidences rounded to 2 dp, near the expected (JPEG shifts colours)."""
    assert [label["Name"] for label in labels] == list(expected)
    for label in labels:
        assert set(label) == {"Name", "Confidence"}
        assert label["Confidence"] == round(label["Confidence"], 2)
        assert label["Confidence"] == pytest.approx(expected[label["Name"]], abs=0.5)


def never_fetch(thumb: Thumbnail) -> bytes:
    raise AssertionError(f"{thumb.key} should not have been fetched")


@pytest.fixture
def rekognition(
    fake_rekognition: FakeRekognition, configure: Callable[..., None]
) -> FakeRekognition:
    configure(labels="rekognition", rekognition_endpoint_url=fake_rekognition.url)
    return fake_rekognition


@pytest.fixture
def no_botocore_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore still retries (3 attempts) but without sleeping between them."""
    monkeypatch.setattr(
        botocore.retries.standard.ExponentialBackoff, "delay_amount", lambda self, ctx: 0
    )


def single_attempt_client(fake: FakeRekognition) -> Any:
    return boto3.client(
        "rekognition",
        endpoint_url=fake.url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
    )


def botocore_attempts(client: Any) -> int:
    """How many times botocore sends one call (`max_attempts` counts the retries only)."""
    retries = client.meta.config.retries or {}
    if "total_max_attempts" in retries:
        return retries["total_max_attempts"]
    return retries.get("max_attempts", 4) + 1


def label_with(client: Any, source: SourceObject, image: DecodedImage, **kwargs: Any) -> Labels:
    options: dict[str, Any] = dict(
        thumbnails=[], max_labels=10, min_confidence=75, fetch_thumbnail=never_fetch
    )
    return detect_labels_with(client, source, image, **{**options, **kwargs})


# --- which input is sent -------------------------------------------------------------


def test_jpeg_original_is_sent_by_s3_reference(rekognition: FakeRekognition) -> None:
    source = upload("uploads/labels/photo one+%.jpg", encode((200, 150), "JPEG"))
    thumb, _ = thumbnail("thumbnails/labels/photo_640x480.jpg", (200, 150))

    result = detect_labels(source, decoded("JPEG", 200, 150), [thumb])

    assert (result.status, result.source, result.error, result.reason) == (
        "COMPLETED",
        "s3",
        None,
        None,
    )
    assert_labels(result.labels, {"Image": 99.0, "Red": 81.18})
    [request] = rekognition.requests
    assert request.headers["x-amz-target"] == "RekognitionService.DetectLabels"
    assert request.headers["content-type"] == "application/x-amz-json-1.1"
    assert request.body["Image"] == {
        "S3Object": {"Bucket": source.bucket, "Name": "uploads/labels/photo one+%.jpg"}
    }


def test_png_original_is_sent_by_s3_reference(rekognition: FakeRekognition) -> None:
    source = upload("uploads/labels/drawing.png", encode((300, 90), "PNG", (40, 40, 220)))

    result = label_with(aws.client("rekognition"), source, decoded("PNG", 300, 90))

    assert result.status == "COMPLETED" and result.source == "s3"
    assert [label["Name"] for label in result.labels] == ["Image", "Blue"]
    assert rekognition.requests[0].image_source == "S3Object"


@pytest.mark.parametrize(
    ("fmt", "width", "height", "size"),
    [
        ("WEBP", 800, 600, None),
        ("GIF", 800, 600, None),
        ("TIFF", 800, 600, None),
        ("HEIF", 800, 600, None),
        ("JPEG", 800, 600, 20_000_000),  # over 15 MB in S3
        ("JPEG", 12_000, 3_000, None),  # over 10000 px a side
        ("PNG", 10_001, 200, None),
    ],
)
def test_original_rekognition_refuses_sends_the_largest_thumbnail_as_bytes(
    rekognition: FakeRekognition, fmt: str, width: int, height: int, size: int | None
) -> None:
    source = upload(f"uploads/labels/refused.{fmt.lower()}", b"not read", size=size)
    small, _ = thumbnail("thumbnails/labels/refused_100x100.jpg", (100, 75))
    large, large_data = thumbnail("thumbnails/labels/refused_640x480.jpg", (640, 480))
    fetched: list[str] = []

    def fetch(thumb: Thumbnail) -> bytes:
        fetched.append(thumb.key)
        return aws.client("s3").get_object(Bucket=thumb.bucket, Key=thumb.key)["Body"].read()

    result = label_with(
        aws.client("rekognition"),
        source,
        decoded(fmt, width, height),
        thumbnails=[small, large],
        fetch_thumbnail=fetch,
    )

    assert result.status == "COMPLETED" and result.source == "thumbnail"
    assert_labels(result.labels, {"Image": 99.0, "Red": 81.18})
    assert fetched == [large.key]
    [request] = rekognition.requests
    assert request.image_source == "Bytes"
    assert request.image_bytes == large_data


def test_task_fetches_the_thumbnail_from_the_thumbnails_bucket(
    rekognition: FakeRekognition,
) -> None:
    source = upload("uploads/labels/anim.gif", b"GIF89a")
    thumb, data = thumbnail("thumbnails/labels/anim_640x480.png", (320, 240), "PNG")

    result = detect_labels(source, decoded("GIF", 320, 240), [thumb])

    assert result.status == "COMPLETED" and result.source == "thumbnail"
    assert rekognition.requests[0].image_bytes == data


def test_thumbnails_rekognition_cannot_take_are_passed_over(rekognition: FakeRekognition) -> None:
    source = upload("uploads/labels/pano.webp", b"RIFF")
    webp, _ = thumbnail("thumbnails/labels/pano_640x480.webp", (640, 480), "WEBP")
    png, png_data = thumbnail("thumbnails/labels/pano_320x240.png", (320, 240), "PNG")
    tiny, _ = thumbnail("thumbnails/labels/pano_100x100.jpg", (100, 60))

    result = label_with(
        aws.client("rekognition"),
        source,
        decoded("WEBP", 4000, 3000),
        thumbnails=[tiny, webp, png],
        fetch_thumbnail=lambda t: png_data if t is png else never_fetch(t),
    )

    assert result.status == "COMPLETED" and result.source == "thumbnail"
    assert rekognition.requests[0].image_bytes == png_data


def test_thumbnail_over_5_mb_is_passed_over(rekognition: FakeRekognition) -> None:
    source = upload("uploads/labels/huge.tiff", b"II*\x00")
    big, _ = thumbnail("thumbnails/labels/huge_640x480.png", (640, 480), "PNG")
    small, small_data = thumbnail("thumbnails/labels/huge_320x240.jpg", (320, 240))
    oversized = b"\x89PNG\r\n\x1a\n" + bytes(5_242_880)

    result = label_with(
        aws.client("rekognition"),
        source,
        decoded("TIFF", 9000, 6000),
        thumbnails=[big, small],
        fetch_thumbnail=lambda t: oversized if t is big else small_data,
    )

    assert result.status == "COMPLETED"
    assert rekognition.requests[0].image_bytes == small_data


@pytest.mark.parametrize(
    ("fmt", "width", "height", "thumbs", "expected"),
    [
        ("PNG", 60, 60, [((60, 60), "PNG")], "60x60 px is under the 80 px minimum"),
        ("JPEG", 30_000, 900, [((640, 19), "JPEG")], "30000x900 px is over the 10000 px"),
        ("WEBP", 800, 600, [((640, 480), "WEBP")], "image/webp is not JPEG or PNG"),
        ("GIF", 800, 600, [], "there are no thumbnails"),
    ],
)
def test_no_usable_input_is_skipped_with_the_reason(
    rekognition: FakeRekognition,
    fmt: str,
    width: int,
    height: int,
    thumbs: list[tuple[tuple[int, int], str]],
    expected: str,
) -> None:
    source = upload(f"uploads/labels/unusable.{fmt.lower()}", b"x")
    thumbnails = [
        thumbnail(f"thumbnails/labels/unusable_{i}.{f.lower()}", size, f)[0]
        for i, (size, f) in enumerate(thumbs)
    ]

    result = label_with(
        aws.client("rekognition"), source, decoded(fmt, width, height), thumbnails=thumbnails
    )

    assert result.status == "SKIPPED" and result.labels == [] and result.error is None
    assert expected in (result.reason or "")
    assert rekognition.requests == []


# --- settings ---------------------------------------------------------------------------


def test_max_labels_and_min_confidence_come_from_the_settings(
    rekognition: FakeRekognition, configure: Callable[..., None]
) -> None:
    configure(rekognition_max_labels=1, rekognition_min_confidence=60.5)
    source = upload("uploads/labels/settings.jpg", encode((100, 100), "JPEG"))

    result = detect_labels(source, decoded("JPEG", 100, 100), [])

    assert rekognition.requests[0].body["MaxLabels"] == 1
    assert rekognition.requests[0].body["MinConfidence"] == 60.5
    assert result.labels == [{"Name": "Image", "Confidence": 99.0}]


def test_defaults_are_the_originals_max_labels_10_min_confidence_75(
    rekognition: FakeRekognition,
) -> None:
    source = upload("uploads/labels/defaults.jpg", encode((100, 100), "JPEG", (120, 120, 120)))

    result = detect_labels(source, decoded("JPEG", 100, 100), [])

    assert rekognition.requests[0].body["MaxLabels"] == 10
    assert rekognition.requests[0].body["MinConfidence"] == 75.0
    assert [label["Name"] for label in result.labels] == ["Image", "Gray"]


def test_min_confidence_filters_labels(
    rekognition: FakeRekognition, configure: Callable[..., None]
) -> None:
    configure(rekognition_min_confidence=99.5)
    source = upload("uploads/labels/pure.png", encode((100, 100), "PNG", (255, 0, 0)))

    result = detect_labels(source, decoded("PNG", 100, 100), [])

    assert result.labels == [{"Name": "Red", "Confidence": 99.5}]


def test_labels_off_is_skipped_plainly(
    fake_rekognition: FakeRekognition, configure: Callable[..., None]
) -> None:
    configure(labels="off", rekognition_endpoint_url=fake_rekognition.url)

    result = detect_labels(upload("uploads/labels/off.jpg", b"x"), decoded("JPEG", 100, 100), [])

    assert result == Labels(status="SKIPPED", reason=OFF_REASON)
    assert "IMAGE_PIPELINE_LABELS=off" in OFF_REASON
    assert fake_rekognition.requests == []


def test_auto_with_an_emulator_endpoint_is_skipped(
    aws_stack: str, configure: Callable[..., None]
) -> None:
    configure(labels="auto")
    assert get_settings().aws_endpoint_url  # MiniStack
    assert get_settings().rekognition_endpoint_url is None

    result = detect_labels(upload("uploads/labels/auto.jpg", b"x"), decoded("JPEG", 100, 100), [])

    assert result == Labels(status="SKIPPED", reason=OFF_REASON)


def test_auto_with_a_rekognition_endpoint_labels(
    fake_rekognition: FakeRekognition, configure: Callable[..., None]
) -> None:
    configure(labels="auto", rekognition_endpoint_url=fake_rekognition.url)
    source = upload("uploads/labels/auto-on.jpg", encode((100, 100), "JPEG"))

    assert detect_labels(source, decoded("JPEG", 100, 100), []).status == "COMPLETED"


# --- errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "told"),
    [
        ("InvalidImageFormatException", "Rekognition cannot read the image's format"),
        ("ImageTooLargeException", "The image is too large for Rekognition"),
        ("InvalidParameterException", "Rekognition refused the request for this image"),
        ("InvalidS3ObjectException", "Rekognition could not read the image from S3"),
    ],
)
def test_permanent_error_is_recorded_as_failed(
    rekognition: FakeRekognition, code: str, told: str, caplog
) -> None:
    rekognition.fail_next(1, code, message="refused for the test")
    source = upload("uploads/labels/refused.jpg", encode((100, 100), "JPEG"))

    result = detect_labels(source, decoded("JPEG", 100, 100), [])

    assert result == Labels(status="FAILED", error=f"{told} ({code}).", source="s3")
    assert len(rekognition.requests) == 1  # not retried
    # Rekognition's own text is logged, not recorded.
    assert f"({code}) when calling the DetectLabels operation: refused for the test" in caplog.text


def test_missing_permission_is_recorded_without_rekognitions_text(
    rekognition: FakeRekognition, caplog
) -> None:
    denial = (
        "User: arn:aws:sts::123456789012:assumed-role/worker/x is not authorized to perform: "
        "rekognition:DetectLabels"
    )
    rekognition.fail_next(1, "AccessDeniedException", message=denial)
    source = upload("uploads/labels/denied.jpg", encode((100, 100), "JPEG"))

    result = detect_labels(source, decoded("JPEG", 100, 100), [])

    assert result == Labels(
        status="FAILED",
        error="The pipeline is not allowed to read or write a resource it needs "
        "(AccessDeniedException); an operator can find the details in the run's log.",
        source="s3",
    )
    [logged] = [r for r in caplog.records if denial in r.getMessage()]
    assert logged.levelno == logging.WARNING and "uploads/labels/denied.jpg" in logged.getMessage()


def test_missing_s3_object_fails_with_invalid_s3_object(rekognition: FakeRekognition) -> None:
    source = SourceObject(
        bucket=get_settings().uploads_bucket,
        key="uploads/labels/never-uploaded.jpg",
        etag="e",
        size=1000,
        last_modified=datetime.now(UTC),
    )

    result = detect_labels(source, decoded("JPEG", 100, 100), [])

    assert result.status == "FAILED"
    assert (
        result.error == "Rekognition could not read the image from S3 (InvalidS3ObjectException)."
    )


def test_content_that_is_not_jpeg_fails_with_invalid_image_format(
    rekognition: FakeRekognition,
) -> None:
    # Validation said JPEG, but the object was replaced by something else meanwhile.
    source = upload("uploads/labels/swapped.jpg", encode((100, 100), "GIF"))

    result = detect_labels(source, decoded("JPEG", 100, 100), [])

    assert result.status == "FAILED"
    assert (
        result.error == "Rekognition cannot read the image's format (InvalidImageFormatException)."
    )


@pytest.mark.usefixtures("no_botocore_backoff")
def test_throttling_that_persists_is_raised_as_transient(rekognition: FakeRekognition) -> None:
    attempts = botocore_attempts(aws.client("rekognition"))
    rekognition.fail_next(attempts, "ThrottlingException")
    source = upload("uploads/labels/busy.jpg", encode((100, 100), "JPEG"))

    with pytest.raises(ClientError) as raised:
        detect_labels(source, decoded("JPEG", 100, 100), [])

    assert aws.error_code(raised.value) == "ThrottlingException"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert aws.is_transient(raised.value)
    assert len(rekognition.requests) == attempts  # botocore's own attempts; then Prefect's


@pytest.mark.usefixtures("no_botocore_backoff")
def test_brief_throttling_is_absorbed_by_botocore(rekognition: FakeRekognition) -> None:
    rekognition.fail_next(2, "ThrottlingException", status=400)
    source = upload("uploads/labels/brief.jpg", encode((100, 100), "JPEG"))

    result = detect_labels(source, decoded("JPEG", 100, 100), [])

    assert result.status == "COMPLETED"
    assert [r.error for r in rekognition.requests] == ["ThrottlingException"] * 2 + [None]


@pytest.mark.parametrize(
    "code", ["ProvisionedThroughputExceededException", "InternalServerError", "ThrottlingException"]
)
def test_transient_errors_are_raised_and_retryable(
    fake_rekognition: FakeRekognition, aws_stack: str, code: str
) -> None:
    fake_rekognition.fail_next(1, code)
    source = upload("uploads/labels/transient.jpg", encode((100, 100), "JPEG"))

    with pytest.raises(ClientError) as raised:
        label_with(single_attempt_client(fake_rekognition), source, decoded("JPEG", 100, 100))

    assert aws.error_code(raised.value) == code
    assert aws.is_transient(raised.value)


def test_lost_connection_is_raised_as_transient(aws_stack: str) -> None:
    fake = FakeRekognition().start()
    client = single_attempt_client(fake)
    fake.stop()  # nothing listens there any more
    source = upload("uploads/labels/offline.jpg", encode((100, 100), "JPEG"))

    with pytest.raises(Exception) as raised:
        label_with(client, source, decoded("JPEG", 100, 100))

    assert aws.is_transient(raised.value)


def test_the_task_retries_transient_errors_only() -> None:
    from prefect.states import Failed

    def failed(exc: Exception) -> Any:
        return Failed(data=exc)

    throttled = ClientError(
        {
            "Error": {"Code": "ThrottlingException", "Message": "Service Unavailable"},
            "ResponseMetadata": {"HTTPStatusCode": 500},
        },
        "DetectLabels",
    )
    refused = ClientError(
        {
            "Error": {"Code": "InvalidImageFormatException", "Message": "no"},
            "ResponseMetadata": {"HTTPStatusCode": 400},
        },
        "DetectLabels",
    )
    assert labels_step.retry_condition_fn is retry_transient
    assert labels_step.retries == 4
    assert retry_transient(labels_step, None, failed(throttled)) is True
    assert retry_transient(labels_step, None, failed(refused)) is False
    assert retry_transient(labels_step, None, failed(ValueError("bug"))) is False


# --- the stand-in's own contract ------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"MaxLabels": -1}, "InvalidParameterException"),
        ({"MaxLabels": 1001}, "InvalidParameterException"),
        ({"MinConfidence": 100.5}, "InvalidParameterException"),
        ({"MinConfidence": -1}, "InvalidParameterException"),
    ],
)
def test_fake_validates_parameters(
    fake_rekognition: FakeRekognition, params: dict[str, Any], code: str
) -> None:
    client = boto3.client(
        "rekognition",
        endpoint_url=fake_rekognition.url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(parameter_validation=False, retries={"total_max_attempts": 1}),
    )
    with pytest.raises(ClientError) as raised:
        client.detect_labels(Image={"Bytes": encode((100, 100), "PNG")}, **params)
    assert aws.error_code(raised.value) == code
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


# Rekognition's documented refusals of image bytes, alike for its image operations.
DOCUMENTED_REFUSALS = [
    (encode((100, 100), "GIF"), "InvalidImageFormatException"),
    (encode((100, 100), "WEBP"), "InvalidImageFormatException"),
    (b"\xff\xd8\xff\xe0 truncated", "InvalidImageFormatException"),
    (encode((79, 200), "PNG"), "InvalidParameterException"),
    (encode((10_001, 80), "PNG"), "ImageTooLargeException"),
    (b"\x89PNG\r\n\x1a\n" + bytes(5_242_880), "ImageTooLargeException"),
]


@pytest.mark.parametrize(("data", "code"), DOCUMENTED_REFUSALS)
def test_fake_refuses_images_as_documented(
    fake_rekognition: FakeRekognition, data: bytes, code: str
) -> None:
    with pytest.raises(ClientError) as raised:
        single_attempt_client(fake_rekognition).detect_labels(Image={"Bytes": data})
    assert aws.error_code(raised.value) == code


def test_fake_refuses_s3_objects_over_15_mb(fake_rekognition: FakeRekognition) -> None:
    source = upload("uploads/labels/16mb.jpg", encode((100, 100), "JPEG") + bytes(16 * 2**20))

    with pytest.raises(ClientError) as raised:
        single_attempt_client(fake_rekognition).detect_labels(
            Image={"S3Object": {"Bucket": source.bucket, "Name": source.key}}
        )
    assert aws.error_code(raised.value) == "ImageTooLargeException"


# --- through Prefect's engine -------------------------------------------------------


@pytest.mark.integration
@pytest.mark.usefixtures("prefect_server", "no_botocore_backoff")
def test_prefect_retries_a_persistent_throttle_and_not_a_refusal(
    rekognition: FakeRekognition,
) -> None:
    from prefect import flow

    fast = labels_step.with_options(retry_delay_seconds=0, retry_jitter_factor=None)
    source = upload("uploads/labels/engine.jpg", encode((100, 100), "JPEG"))
    work = ImageWork(source=source, run_id="labels-engine", image=decoded("JPEG", 100, 100))

    @flow
    def label_once() -> Labels | None:
        return fast(work).labels

    attempts = botocore_attempts(aws.client("rekognition"))
    # A whole task attempt throttled (all of botocore's attempts): Prefect retries, it succeeds.
    rekognition.fail_next(attempts, "ThrottlingException")
    assert label_once().status == "COMPLETED"
    assert len(rekognition.requests) == attempts + 1

    # A refusal: recorded at once, not retried.
    rekognition.reset()
    rekognition.fail_next(1, "InvalidImageFormatException", message="nope")
    assert label_once() == Labels(
        status="FAILED",
        error="Rekognition cannot read the image's format (InvalidImageFormatException).",
        source="s3",
    )
    assert len(rekognition.requests) == 1
