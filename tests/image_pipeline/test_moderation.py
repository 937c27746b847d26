"""Moderation against MiniStack's S3 and the stand-in Rekognition, via real boto3."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from PIL import Image

from image_pipeline import aws
from image_pipeline.labels import MIN_SIDE
from image_pipeline.models import DecodedImage, ImageWork, Moderation
from image_pipeline.moderation import MAX_SENT_SIDE, OFF_REASON, moderate, sendable_jpeg
from image_pipeline.settings import Settings
from tasks.moderation import moderate as moderation_step
from tasks.policies import retry_transient
from tests.fakes.rekognition import MODERATION_TARGET, FakeRekognition
from tests.image_pipeline.test_labels import (
    DOCUMENTED_REFUSALS,
    botocore_attempts,
    encode,
    no_botocore_backoff,  # noqa: F401  (a fixture)
    single_attempt_client,
    upload,
)

MAGENTA = (255, 0, 255)  # the fake: "Explicit" at 99.5, "Explicit Nudity" at 99.0
MAUVE = (200, 100, 200)  # the fake: "Explicit" at 69.41, under the default flag threshold
RED = (200, 50, 50)  # the fake: no moderation labels


def decoded(fmt: str, size: tuple[int, int], colour: tuple[int, ...], mode: str = "RGB"):
    return DecodedImage(
        format=fmt,
        width=size[0],
        height=size[1],
        mode=mode,
        frame_count=1,
        pixels=Image.new(mode, size, colour),
    )


def jpeg_upload(name: str, colour: tuple[int, int, int], size=(200, 150)):
    return upload(f"uploads/moderation/{name}", encode(size, "JPEG", colour))


@pytest.fixture
def rekognition(
    fake_rekognition: FakeRekognition, configure: Callable[..., None]
) -> FakeRekognition:
    configure(moderation="rekognition", rekognition_endpoint_url=fake_rekognition.url)
    return fake_rekognition


# --- the verdict ---------------------------------------------------------------------


def test_magenta_original_is_flagged_by_s3_reference(rekognition: FakeRekognition) -> None:
    source = jpeg_upload("flagged one+%.jpg", MAGENTA)

    result = moderate(source, decoded("JPEG", (200, 150), MAGENTA))

    assert (result.status, result.source, result.error) == ("FLAGGED", "s3", None)
    assert result.quarantined
    assert [(m["Name"], m["ParentName"], m["TaxonomyLevel"]) for m in result.labels] == [
        ("Explicit", "", 1),
        ("Explicit Nudity", "Explicit", 2),
    ]
    assert result.labels[0]["Confidence"] == pytest.approx(99.5, abs=0.6)
    [request] = rekognition.requests
    assert request.target == MODERATION_TARGET
    assert request.body["Image"] == {"S3Object": {"Bucket": source.bucket, "Name": source.key}}
    assert request.body["MinConfidence"] == 50.0  # the default setting


def test_labels_under_the_flag_threshold_are_recorded_clean(rekognition: FakeRekognition):
    result = moderate(jpeg_upload("mauve.jpg", MAUVE), decoded("JPEG", (200, 150), MAUVE))

    assert result.status == "CLEAN" and not result.quarantined
    assert [m["Name"] for m in result.labels] == ["Explicit", "Explicit Nudity"]
    assert all(50 <= m["Confidence"] < 80 for m in result.labels)


def test_the_flag_threshold_is_a_setting(rekognition: FakeRekognition, configure) -> None:
    configure(
        moderation="rekognition",
        rekognition_endpoint_url=rekognition.url,
        moderation_flag_confidence=60,
    )
    result = moderate(jpeg_upload("mauve.jpg", MAUVE), decoded("JPEG", (200, 150), MAUVE))
    assert result.status == "FLAGGED"


def test_min_confidence_is_sent_and_filters(rekognition: FakeRekognition, configure) -> None:
    configure(
        moderation="rekognition",
        rekognition_endpoint_url=rekognition.url,
        moderation_min_confidence=75,
    )
    result = moderate(jpeg_upload("mauve.jpg", MAUVE), decoded("JPEG", (200, 150), MAUVE))
    assert (result.status, result.labels) == ("CLEAN", [])
    assert rekognition.requests[-1].body["MinConfidence"] == 75


def test_an_unremarkable_image_is_clean(rekognition: FakeRekognition) -> None:
    result = moderate(jpeg_upload("red.jpg", RED), decoded("JPEG", (200, 150), RED))
    assert (result.status, result.labels, result.source) == ("CLEAN", [], "s3")


# --- what is sent when the original cannot be ---------------------------------------


@pytest.mark.parametrize(
    ("fmt", "size", "mode", "colour"),
    [
        ("WEBP", (300, 200), "RGB", MAGENTA),  # a format Rekognition does not read
        ("PNG", (40, 30), "RGB", MAGENTA),  # under 80 px a side: padded, not refused
        ("PNG", (12_000, 90), "RGB", MAGENTA),  # over 10000 px a side: scaled down
        ("WEBP", (300, 200), "RGBA", (*MAGENTA, 255)),  # transparency flattened
    ],
)
def test_pixels_are_sent_when_the_original_cannot_be(
    rekognition: FakeRekognition, fmt: str, size: tuple[int, int], mode: str, colour: tuple
) -> None:
    data = encode((100, 100), "PNG")  # the stored file; the decoded pixels are what is sent
    source = upload(f"uploads/moderation/pixels.{fmt.lower()}", data)

    result = moderate(source, decoded(fmt, size, colour, mode))

    # Checked, not refused: padding (white) dilutes the fake's magenta, so the verdict varies.
    assert result.status in ("CLEAN", "FLAGGED") and result.source == "pixels"
    sent = Image.open(io.BytesIO(rekognition.requests[-1].image_bytes))
    assert sent.format == "JPEG" and sent.mode == "RGB"
    assert min(sent.size) >= MIN_SIDE and max(sent.size) <= MAX_SENT_SIDE
    assert sent.getpixel((sent.width // 2, sent.height // 2))[1] < 40  # the magenta itself


def test_a_webp_is_checked_from_its_pixels(rekognition: FakeRekognition) -> None:
    source = upload("uploads/moderation/picture.webp", encode((300, 200), "WEBP", MAGENTA))
    result = moderate(source, decoded("WEBP", (300, 200), MAGENTA))
    assert (result.status, result.source) == ("FLAGGED", "pixels")


def test_sendable_jpeg_keeps_the_picture_centred_on_padding() -> None:
    sent = Image.open(io.BytesIO(sendable_jpeg(Image.new("RGB", (20, 100), MAGENTA))))
    assert sent.size == (80, 100)
    assert sent.getpixel((40, 50))[1] < 40  # magenta in the middle
    assert sent.getpixel((2, 50)) == pytest.approx((255, 255, 255), abs=3)  # padding


# --- off, auto ------------------------------------------------------------------------


def test_off_is_skipped_with_the_reason(aws_stack: str, configure) -> None:
    configure(moderation="off")
    result = moderate(jpeg_upload("off.jpg", MAGENTA), decoded("JPEG", (200, 150), MAGENTA))
    assert result == Moderation(status="SKIPPED", reason=OFF_REASON)
    assert not result.quarantined


def test_auto_follows_the_rule_of_labels() -> None:
    def enabled(**values: Any) -> Settings:
        return Settings(**{"aws_endpoint_url": None, "rekognition_endpoint_url": None, **values})

    assert enabled(moderation="auto").moderation_enabled
    assert not enabled(
        moderation="auto", aws_endpoint_url="http://127.0.0.1:4566"
    ).moderation_enabled
    assert enabled(
        moderation="auto",
        aws_endpoint_url="http://127.0.0.1:4566",
        rekognition_endpoint_url="http://x",
    ).moderation_enabled
    assert not enabled(moderation="off").moderation_enabled
    assert enabled(aws_endpoint_url="http://x", moderation="rekognition").moderation_enabled


# --- errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "sentence"),
    [
        (
            "InvalidImageFormatException",
            "Rekognition cannot read the image's format (InvalidImageFormatException).",
        ),
        ("ImageTooLargeException", "The image is too large for Rekognition"),
        ("AccessDeniedException", "(AccessDeniedException)"),
        ("HumanLoopQuotaExceededException", "(HumanLoopQuotaExceededException)"),
    ],
)
def test_permanent_error_fails_closed(rekognition: FakeRekognition, code: str, sentence: str):
    rekognition.fail_next(1, code, message="arn:aws:iam::123456789012:role/secret-role")
    result = moderate(jpeg_upload("err.jpg", RED), decoded("JPEG", (200, 150), RED))

    assert result.status == "FAILED" and result.quarantined
    assert sentence in (result.error or "")
    assert "123456789012" not in (result.error or "")
    assert len(rekognition.requests) == 1  # not retried


@pytest.mark.usefixtures("no_botocore_backoff")
def test_persistent_throttling_is_raised_for_the_task_to_retry(
    rekognition: FakeRekognition,
) -> None:
    attempts = botocore_attempts(aws.client("rekognition"))
    rekognition.fail_next(attempts, "ThrottlingException")

    with pytest.raises(ClientError) as raised:
        moderate(jpeg_upload("busy.jpg", RED), decoded("JPEG", (200, 150), RED))

    assert aws.error_code(raised.value) == "ThrottlingException"
    assert aws.is_transient(raised.value)
    assert len(rekognition.requests) == attempts


def test_the_step_has_the_transient_retry_policy() -> None:
    assert moderation_step.retry_condition_fn is retry_transient
    assert moderation_step.retries == 4
    assert moderation_step.name == "moderation"


@pytest.mark.integration
@pytest.mark.usefixtures("prefect_server", "no_botocore_backoff")
def test_prefect_retries_a_throttled_moderation(rekognition: FakeRekognition) -> None:
    from prefect import flow

    fast = moderation_step.with_options(retry_delay_seconds=0, retry_jitter_factor=None)
    source = jpeg_upload("engine.jpg", MAGENTA)
    work = ImageWork(
        source=source, run_id="moderation-engine", image=decoded("JPEG", (200, 150), MAGENTA)
    )

    @flow
    def moderate_once() -> Moderation | None:
        return fast(work).moderation

    attempts = botocore_attempts(aws.client("rekognition"))
    rekognition.fail_next(attempts, "ThrottlingException")
    assert moderate_once().status == "FLAGGED"
    assert len(rekognition.requests) == attempts + 1


# --- the stand-in's own contract ------------------------------------------------------


def raw_client(fake: FakeRekognition) -> Any:
    return boto3.client(
        "rekognition",
        endpoint_url=fake.url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(parameter_validation=False, retries={"total_max_attempts": 1}),
    )


@pytest.mark.parametrize("min_confidence", [-1, 100.5, True])
def test_fake_validates_min_confidence(
    fake_rekognition: FakeRekognition, min_confidence: object
) -> None:
    with pytest.raises(ClientError) as raised:
        raw_client(fake_rekognition).detect_moderation_labels(
            Image={"Bytes": encode((100, 100), "PNG")}, MinConfidence=min_confidence
        )
    assert aws.error_code(raised.value) == "InvalidParameterException"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_fake_answers_the_documented_shape_with_default_min_confidence(
    fake_rekognition: FakeRekognition,
) -> None:
    response = single_attempt_client(fake_rekognition).detect_moderation_labels(
        Image={"Bytes": encode((100, 100), "PNG", MAUVE)}
    )
    assert response["ModerationModelVersion"]
    assert [set(m) for m in response["ModerationLabels"]] == [
        {"Name", "Confidence", "ParentName", "TaxonomyLevel"}
    ] * 2
    assert min(m["Confidence"] for m in response["ModerationLabels"]) >= 50


@pytest.mark.parametrize(("data", "code"), DOCUMENTED_REFUSALS)
def test_fake_refuses_images_as_documented(
    fake_rekognition: FakeRekognition, data: bytes, code: str
) -> None:
    with pytest.raises(ClientError) as raised:
        single_attempt_client(fake_rekognition).detect_moderation_labels(Image={"Bytes": data})
    assert aws.error_code(raised.value) == code


def test_fake_throttles_with_http_500(fake_rekognition: FakeRekognition) -> None:
    fake_rekognition.fail_next(1, "ThrottlingException")
    with pytest.raises(ClientError) as raised:
        single_attempt_client(fake_rekognition).detect_moderation_labels(
            Image={"Bytes": encode((100, 100), "PNG")}
        )
    assert aws.error_code(raised.value) == "ThrottlingException"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
