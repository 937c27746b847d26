"""SNS notices, with the original system's subjects, bodies and message attributes."""

from __future__ import annotations

import logging
import re
import time
from functools import lru_cache
from typing import Any

from image_pipeline.aws import client, is_transient
from image_pipeline.models import QUARANTINED
from image_pipeline.settings import get_settings

logger = logging.getLogger("image_pipeline.notify")

SUCCESS_SUBJECT = "SUCCESS: Image Processing Complete"
FAILURE_SUBJECT = "FAILURE: Image Processing Error"
MODERATION_SUBJECT = "QUARANTINED: Image Held for Moderation"

# Notices are sent from flow hooks, which Prefect never retries: after botocore's own quick
# attempts, these waits (seconds) let a notice outlive a short SNS outage.
PUBLISH_RETRY_DELAYS = (1.0, 2.0, 4.0)

# SNS refuses message bodies and attribute values with characters outside XML's character
# set (control characters other than tab, LF and CR; U+FFFE, U+FFFF), as SQS does for the
# subscribers it delivers to. S3 keys may contain them, so they are sent as \uXXXX escapes.
_UNSENDABLE = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def sns_text(text: str) -> str:
    """`text` with every character SNS would refuse written as a `\\uXXXX` escape."""
    return _UNSENDABLE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


@lru_cache
def topic_arn() -> str:
    settings = get_settings()
    if settings.topic_arn:
        return settings.topic_arn
    # CreateTopic is idempotent and answers the ARN of an existing topic of that name.
    return client("sns").create_topic(Name=settings.topic_name)["TopicArn"]


def _attributes(**values: str) -> dict[str, dict[str, str]]:
    return {
        name: {"DataType": "String", "StringValue": sns_text(value)}
        for name, value in values.items()
    }


def _thumbnail_lines(item: dict[str, Any]) -> str:
    return "\n".join(f"  {size}: {uri}" for size, uri in item.get("thumbnails", {}).items())


def publish_success(item: dict[str, Any]) -> str:
    key = item["ImageKey"]
    thumbnails = _thumbnail_lines(item)
    body = (
        f"Image processing completed successfully for {key}.\n\n"
        f"Image: s3://{item['s3_bucket_original']}/{key}\n"
        f"Status: {item['overall_processing_status']}\n"
        f"Thumbnails:\n{thumbnails}\n"
    )
    return _publish(SUCCESS_SUBJECT, body, processing_status="SUCCESS", imageId=key)


def publish_completed(item: dict[str, Any]) -> list[str]:
    """The notices of a COMPLETED item: success, then the moderation notice when its
    thumbnails were quarantined (flagged, or a check that failed). The message ids."""
    sent = [publish_success(item)]
    if item.get("moderation_status") in QUARANTINED:
        sent.append(publish_moderation(item))
    return sent


def publish_moderation(item: dict[str, Any]) -> str:
    """A notice of its own for the people who review images: subject, attributes and body
    differ from the success notice, so a subscription can filter on them."""
    key = item["ImageKey"]
    status = item["moderation_status"]
    labels = "\n".join(
        f"  {label['Name']} ({label['Confidence']}%)"
        + (f" under {label['ParentName']}" if label.get("ParentName") else "")
        for label in item.get("moderation_labels", [])
    )
    reason = (
        f"Moderation labels:\n{labels or '  (none)'}\n"
        if status == "FLAGGED"
        else f"The check failed: {item.get('moderation_error', 'unknown error')}\n"
    )
    thumbnails = _thumbnail_lines(item)
    body = (
        f"The thumbnails of {key} were quarantined by moderation ({status}).\n\n"
        f"Image: s3://{item['s3_bucket_original']}/{key}\n"
        f"{reason}"
        f"Quarantined thumbnails:\n{thumbnails}\n"
    )
    return _publish(
        MODERATION_SUBJECT,
        body,
        processing_status="QUARANTINED",
        imageId=key,
        moderation_status=status,
    )


def publish_failure(
    bucket: str, key: str, *, error_type: str, error_message: str, failed_step: str
) -> str:
    body = (
        f"Image processing failed for {key}.\n\n"
        f"Image: s3://{bucket}/{key}\n"
        f"Failed step: {failed_step}\n"
        f"Error: {error_type}\n"
        f"Cause: {error_message}\n"
    )
    return _publish(
        FAILURE_SUBJECT,
        body,
        processing_status="FAILURE",
        imageId=key,
        failed_step=failed_step,
    )


def _publish(subject: str, body: str, **attributes: str) -> str:
    for delay in PUBLISH_RETRY_DELAYS:
        try:
            return _send(subject, body, attributes)
        except Exception as exc:
            if not is_transient(exc):
                raise
            logger.warning("Publishing %r failed, trying again in %s s: %s", subject, delay, exc)
            time.sleep(delay)
    return _send(subject, body, attributes)


def _send(subject: str, body: str, attributes: dict[str, str]) -> str:
    response = client("sns").publish(
        TopicArn=topic_arn(),
        Subject=subject,
        Message=sns_text(body),
        MessageAttributes=_attributes(**attributes),
    )
    return response["MessageId"]
