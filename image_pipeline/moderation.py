"""Rekognition moderation: is the image fit to show? CLEAN, FLAGGED, or why it is unknown.

DetectModerationLabels has DetectLabels' input limits (JPEG or PNG; 15 MB by S3
reference, 5 MB as bytes; 80 to 10000 px a side). The original is sent by S3 reference
when it fits. Otherwise the decoded pixels, which the step has in memory before any
thumbnail exists, are sent as a JPEG made to fit: scaled down to `MAX_SENT_SIDE` and
padded up to the minimum side, so every image that validated can be checked.

An image is FLAGGED when a label reaches `moderation_flag_confidence`. A permanent
Rekognition error is recorded (FAILED, with a sentence naming its code) and the
thumbnails are quarantined all the same: a check that could not be made is no proof
the image is fit to show. A transient error is raised, for the task to retry.
"""

from __future__ import annotations

import io
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from PIL import Image

from image_pipeline.aws import client, is_transient
from image_pipeline.errors import run_logger
from image_pipeline.labels import MIN_SIDE, describe_rekognition_error, original_problem
from image_pipeline.models import DecodedImage, Moderation, SourceObject
from image_pipeline.settings import get_settings

# Pixels sent as bytes are scaled to this long side: plenty for moderation, and a JPEG of
# it stays far under the 5 MB limit of Image.Bytes.
MAX_SENT_SIDE = 1920
SENT_QUALITY = 90
PAD_COLOUR = (255, 255, 255)

OFF_REASON = (
    "Moderation is off (IMAGE_PIPELINE_MODERATION=off, or auto with a local emulator, "
    "which has no Rekognition)."
)


def moderate_with(
    rekognition: Any,
    source: SourceObject,
    image: DecodedImage,
    *,
    min_confidence: float,
    flag_confidence: float,
) -> Moderation:
    """Check the image with `rekognition` (a boto3 client)."""
    if original_problem(source, image) is None:
        input_source = "s3"
        request_image: dict[str, Any] = {"S3Object": {"Bucket": source.bucket, "Name": source.key}}
    else:
        input_source = "pixels"
        request_image = {"Bytes": sendable_jpeg(image.pixels)}
    try:
        response = rekognition.detect_moderation_labels(
            Image=request_image, MinConfidence=min_confidence
        )
    except (ClientError, BotoCoreError) as exc:
        if is_transient(exc):
            raise
        run_logger(__name__).warning("Moderation failed for %r: %s", source.key, exc)
        return Moderation(
            status="FAILED", error=describe_rekognition_error(exc), source=input_source
        )
    labels = [_label(label) for label in response.get("ModerationLabels", [])]
    flagged = any(label["Confidence"] >= flag_confidence for label in labels)
    return Moderation(status="FLAGGED" if flagged else "CLEAN", labels=labels, source=input_source)


def _label(label: dict[str, Any]) -> dict[str, Any]:
    return {
        "Name": label["Name"],
        "Confidence": round(float(label["Confidence"]), 2),
        "ParentName": label.get("ParentName", ""),
        "TaxonomyLevel": int(label.get("TaxonomyLevel", 0)),
    }


def sendable_jpeg(pixels: Image.Image) -> bytes:
    """The pixels as a JPEG within Rekognition's limits: at most `MAX_SENT_SIDE` a side,
    at least `MIN_SIDE` (padded, never stretched), transparency flattened on white."""
    picture = pixels.copy()
    picture.thumbnail((MAX_SENT_SIDE, MAX_SENT_SIDE))
    if picture.mode in ("RGBA", "LA"):
        flat = Image.new("RGB", picture.size, PAD_COLOUR)
        flat.paste(picture.convert("RGBA"), mask=picture.convert("RGBA").getchannel("A"))
        picture = flat
    picture = picture.convert("RGB")
    if min(picture.size) < MIN_SIDE:
        canvas = Image.new(
            "RGB", (max(picture.width, MIN_SIDE), max(picture.height, MIN_SIDE)), PAD_COLOUR
        )
        canvas.paste(
            picture,
            ((canvas.width - picture.width) // 2, (canvas.height - picture.height) // 2),
        )
        picture = canvas
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=SENT_QUALITY)
    return buffer.getvalue()


def moderate(source: SourceObject, image: DecodedImage) -> Moderation:
    """Moderation as configured: Rekognition, or SKIPPED with the reason when it is off."""
    settings = get_settings()
    if not settings.moderation_enabled:
        return Moderation(status="SKIPPED", reason=OFF_REASON)
    return moderate_with(
        client("rekognition"),
        source,
        image,
        min_confidence=settings.moderation_min_confidence,
        flag_confidence=settings.moderation_flag_confidence,
    )
