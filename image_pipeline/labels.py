"""Rekognition labels for an image, from the original in S3 when Rekognition accepts it.

Rekognition's DetectLabels takes a JPEG or PNG, either by S3 reference (at most 15 MB)
or as bytes in the request (at most 5 MB), at least 80 and at most 10000 pixels a side
(https://docs.aws.amazon.com/rekognition/latest/dg/limits.html). The original is sent by
reference when it fits; otherwise the largest JPEG/PNG thumbnail that fits is sent as
bytes; when neither fits, labelling is skipped with the reason.

A permanent Rekognition error (a refused image, missing permission) is recorded in the
result, as a sentence that names its code, and does not fail the image; the error's own
text goes to the run's log. A transient one (throttling, 5xx, a lost connection) is
raised, so that the task retries it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import islice
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from image_pipeline.aws import client, error_code, is_transient
from image_pipeline.duplicates import find_duplicates
from image_pipeline.errors import describe_error, run_logger
from image_pipeline.models import DecodedImage, Fingerprint, Labels, SourceObject, Thumbnail
from image_pipeline.records import read_item
from image_pipeline.settings import get_settings

# Pillow format names whose files Rekognition reads. MPO is how Pillow names a JPEG
# that carries extra (multi-picture) frames, as many phone cameras write them.
ACCEPTED_FORMATS = frozenset({"JPEG", "MPO", "PNG"})
ACCEPTED_CONTENT_TYPES = frozenset({"image/jpeg", "image/png"})
# "15 MB" is not defined more precisely; 15 000 000 bytes is within either reading.
MAX_S3_OBJECT_BYTES = 15_000_000
MAX_IMAGE_BYTES = 5_242_880  # the documented length limit of Image.Bytes
MIN_SIDE = 80
MAX_SIDE = 10_000

# Rekognition's documented refusals of an image, as users are told them; its other errors
# (no permission, say) are told as any AWS error is (`describe_error`).
REFUSALS = {
    "InvalidImageFormatException": "Rekognition cannot read the image's format",
    "ImageTooLargeException": "The image is too large for Rekognition",
    "InvalidParameterException": "Rekognition refused the request for this image",
    "InvalidS3ObjectException": "Rekognition could not read the image from S3",
}

# Duplicates read for labels to copy, oldest first, before Rekognition is asked after all.
MAX_LABELLED_DUPLICATES = 10
LOCAL_UNAVAILABLE = (
    "The local label model could not be loaded (ClassifierUnavailable); an operator can "
    "find the details in the run's log."
)

OFF_REASON = (
    "Label detection is off (IMAGE_PIPELINE_LABELS=off, or auto with a local emulator, "
    "which has no Rekognition)."
)


def detect_labels_with(
    rekognition: Any,
    source: SourceObject,
    image: DecodedImage,
    thumbnails: Sequence[Thumbnail],
    *,
    max_labels: int,
    min_confidence: float,
    fetch_thumbnail: Callable[[Thumbnail], bytes],
) -> Labels:
    """Label the image with `rekognition` (a boto3 client), from the best input it accepts."""
    input_source: str | None = None
    try:
        problem = original_problem(source, image)
        if problem is None:
            input_source = "s3"
            request_image: dict[str, Any] = {
                "S3Object": {"Bucket": source.bucket, "Name": source.key}
            }
        else:
            input_source = "thumbnail"
            data, skipped = _thumbnail_bytes(thumbnails, fetch_thumbnail)
            if data is None:
                return Labels(
                    status="SKIPPED",
                    reason=f"Rekognition cannot take the original ({problem}) and no thumbnail "
                    f"fits its limits ({'; '.join(skipped) or 'there are no thumbnails'}).",
                )
            request_image = {"Bytes": data}
        response = rekognition.detect_labels(
            Image=request_image, MaxLabels=max_labels, MinConfidence=min_confidence
        )
    except (ClientError, BotoCoreError) as exc:
        if is_transient(exc):
            raise
        run_logger(__name__).warning("Rekognition failed for %r: %s", source.key, exc)
        return Labels(status="FAILED", error=describe_rekognition_error(exc), source=input_source)
    return Labels(
        status="COMPLETED",
        labels=[
            {"Name": label["Name"], "Confidence": round(float(label["Confidence"]), 2)}
            for label in response.get("Labels", [])
        ],
        source=input_source,
    )


def original_problem(source: SourceObject, image: DecodedImage) -> str | None:
    """Why Rekognition would refuse the original by S3 reference, or None if it accepts it."""
    if image.format not in ACCEPTED_FORMATS:
        return f"{image.format} is not JPEG or PNG"
    if source.size > MAX_S3_OBJECT_BYTES:
        return f"{source.size} bytes is over the 15 MB limit for S3 objects"
    return _side_problem(image.width, image.height)


def _side_problem(width: int, height: int) -> str | None:
    if min(width, height) < MIN_SIDE:
        return f"{width}x{height} px is under the {MIN_SIDE} px minimum a side"
    if max(width, height) > MAX_SIDE:
        return f"{width}x{height} px is over the {MAX_SIDE} px maximum a side"
    return None


def _thumbnail_bytes(
    thumbnails: Sequence[Thumbnail], fetch: Callable[[Thumbnail], bytes]
) -> tuple[bytes | None, list[str]]:
    """The bytes of the largest thumbnail Rekognition accepts, and why others were passed over."""
    skipped: list[str] = []
    for thumb in sorted(thumbnails, key=lambda t: t.width * t.height, reverse=True):
        name = f"{thumb.label} thumbnail"
        if thumb.content_type not in ACCEPTED_CONTENT_TYPES:
            skipped.append(f"{name}: {thumb.content_type} is not JPEG or PNG")
            continue
        problem = _side_problem(thumb.width, thumb.height)
        if problem:
            skipped.append(f"{name}: {problem}")
            continue
        data = fetch(thumb)
        if len(data) > MAX_IMAGE_BYTES:
            skipped.append(f"{name}: {len(data)} bytes is over the 5 MB limit for image bytes")
            continue
        return data, skipped
    return None, skipped


def describe_rekognition_error(exc: BaseException) -> str:
    """`rekognition_error`: a sentence that names the error code, never Rekognition's text."""
    code = error_code(exc)
    if code in REFUSALS:
        return f"{REFUSALS[code]} ({code})."
    return describe_error(exc)[1]


def labels_of_duplicates(pixel_sha256: str, key: str) -> Labels | None:
    """A copy of the labels of the oldest image with these pixels that has labels (among the
    first `MAX_LABELLED_DUPLICATES`); None when none has (it was labelled with labels off)."""
    for other in islice(find_duplicates(pixel_sha256, key), MAX_LABELLED_DUPLICATES):
        item = read_item(other)
        if item and item.get("labels_status") == "COMPLETED":
            found = item.get("extracted_metadata", {}).get("rekognition_labels", [])
            return Labels(status="COMPLETED", labels=found, source="duplicate")
    return None


def _fetch_thumbnail(thumb: Thumbnail) -> bytes:
    return client("s3").get_object(Bucket=thumb.bucket, Key=thumb.key)["Body"].read()


def detect_local_labels(image: DecodedImage, *, max_labels: int, min_confidence: float) -> Labels:
    """Labels from the CPU classifier (`IMAGE_PIPELINE_LABELS=local`), from the decoded
    pixels: no AWS call and nothing to fetch. Each has Rekognition's Parents."""
    from image_pipeline.classifier import ClassifierUnavailable, classify
    from image_pipeline.classifier.taxonomy import labels_for

    try:
        probabilities = classify(image.pixels)
    except ClassifierUnavailable as exc:
        # As a refusal by Rekognition: recorded, and the image keeps its thumbnails. The
        # reason (paths, digests) is for operators: the run's log.
        run_logger(__name__).error("The local label model is unavailable: %s", exc)
        return Labels(status="FAILED", error=LOCAL_UNAVAILABLE, source="local")
    found = labels_for(probabilities, max_labels=max_labels, min_confidence=min_confidence)
    return Labels(status="COMPLETED", labels=found, source="local")


def prepare() -> None:
    """Get the configured labels backend ready ahead of the labels step: the local
    classifier's model loads in the background."""
    if get_settings().labels_backend == "local":
        from image_pipeline import classifier

        classifier.load_in_background()


def detect_labels(
    source: SourceObject,
    image: DecodedImage,
    thumbnails: Sequence[Thumbnail],
    fingerprint: Fingerprint | None = None,
) -> Labels:
    """Labels as configured: Rekognition, the local classifier, or SKIPPED with the reason
    when labelling is off.

    With `skip_labels_of_duplicates`, an image with the same pixels as earlier ones takes the
    labels of the oldest of them that has some, and costs no Rekognition call.
    """
    settings = get_settings()
    if settings.labels_backend == "local":
        return detect_local_labels(
            image,
            max_labels=settings.rekognition_max_labels,
            min_confidence=settings.rekognition_min_confidence,
        )
    if settings.labels_backend == "off":
        return Labels(status="SKIPPED", reason=OFF_REASON)
    if fingerprint and fingerprint.duplicate_of and settings.skip_labels_of_duplicates:
        copied = labels_of_duplicates(fingerprint.pixel_sha256, source.key)
        if copied is not None:
            return copied
    return detect_labels_with(
        client("rekognition"),
        source,
        image,
        thumbnails,
        max_labels=settings.rekognition_max_labels,
        min_confidence=settings.rekognition_min_confidence,
        fetch_thumbnail=_fetch_thumbnail,
    )
