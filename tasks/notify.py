"""SNS notices, with the original system's subjects, bodies and message attributes."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from tasks.aws import client
from tasks.settings import get_settings

SUCCESS_SUBJECT = "SUCCESS: Image Processing Complete"
FAILURE_SUBJECT = "FAILURE: Image Processing Error"


@lru_cache
def topic_arn() -> str:
    settings = get_settings()
    if settings.topic_arn:
        return settings.topic_arn
    # CreateTopic is idempotent and answers the ARN of an existing topic of that name.
    return client("sns").create_topic(Name=settings.topic_name)["TopicArn"]


def _attributes(**values: str) -> dict[str, dict[str, str]]:
    return {name: {"DataType": "String", "StringValue": value} for name, value in values.items()}


def publish_success(item: dict[str, Any]) -> str:
    key = item["ImageKey"]
    thumbnails = "\n".join(f"  {size}: {uri}" for size, uri in item.get("thumbnails", {}).items())
    body = (
        f"Image processing completed successfully for {key}.\n\n"
        f"Image: s3://{item['s3_bucket_original']}/{key}\n"
        f"Status: {item['overall_processing_status']}\n"
        f"Thumbnails:\n{thumbnails}\n"
    )
    return _publish(SUCCESS_SUBJECT, body, processing_status="SUCCESS", imageId=key)


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
    response = client("sns").publish(
        TopicArn=topic_arn(),
        Subject=subject,
        Message=body,
        MessageAttributes=_attributes(**attributes),
    )
    return response["MessageId"]
