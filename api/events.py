"""EventBridge's S3 "Object Created" events in, the Prefect event that starts a run out.

Pure functions only (no I/O), so the shape is unit-tested here and the Prefect Cloud
webhook template can reproduce it. One Prefect event carries a batch of uploads
(`api/batching.py` collects them); each upload keeps the id it had as an event of its own.

EventBridge delivers the key raw (`"uploads/x y+z.jpg"`), unlike the older S3
notification format, so it is never URL-decoded here.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

OBJECT_CREATED = "Object Created"
PREFECT_EVENT = "aws.s3.objects.created"

# Never change: the ids of events already sent would change with it, and a redelivered
# event would then start a second run instead of being recognised as a duplicate.
EVENT_NAMESPACE = uuid.UUID("015d85a8-a999-42bd-aac8-8f9470ad10c8")


# What EventBridge's API destination posts for an upload (documentation and tests).
EXAMPLE_EVENT: dict[str, Any] = {
    "version": "0",
    "id": "17793124-05d4-b198-2fde-7ededc63b103",
    "detail-type": OBJECT_CREATED,
    "source": "aws.s3",
    "account": "111122223333",
    "time": "2024-11-27T14:32:00Z",
    "region": "us-east-1",
    "resources": ["arn:aws:s3:::image-pipeline-uploads"],
    "detail": {
        "version": "0",
        "bucket": {"name": "image-pipeline-uploads"},
        "object": {
            "key": "uploads/x y+z.jpg",
            "size": 5,
            "etag": "b1946ac92492d2347c6235b4d2611184",
            "sequencer": "00617F08299329D189",
        },
        "request-id": "N4N7GDK58NMKJ12R",
        "requester": "123456789012",
        "reason": "PutObject",
    },
}


class S3Event(BaseModel):
    """The envelope of any S3 event from EventBridge; `detail` depends on `detail-type`."""

    model_config = ConfigDict(populate_by_name=True)

    id: str = Field(min_length=1)
    detail_type: str = Field(alias="detail-type")
    source: Literal["aws.s3"]
    time: AwareDatetime
    detail: dict[str, Any]


class S3Bucket(BaseModel):
    name: str = Field(min_length=1)


class S3Object(BaseModel):
    key: str = Field(min_length=1)
    # Absent from some events (e.g. some copy and multipart paths), so optional.
    size: int | None = Field(None, ge=0)
    etag: str | None = None
    sequencer: str | None = None


class ObjectCreated(BaseModel):
    """The `detail` of an "Object Created" event; fields we do not use are ignored."""

    bucket: S3Bucket
    object: S3Object


class ObjectCreatedEvent(S3Event):
    detail_type: Literal["Object Created"] = Field(alias="detail-type")
    detail: ObjectCreated  # narrows the envelope's free-form dict


def parse(body: bytes) -> S3Event:
    """An `ObjectCreatedEvent`, or the bare envelope of another S3 event.

    Raises `pydantic.ValidationError`, also for malformed JSON (error type `json_invalid`).
    """
    event = S3Event.model_validate_json(body)
    if event.detail_type == OBJECT_CREATED:
        # The JSON is parsed once; only the free-form `detail` is validated again, narrower.
        return ObjectCreatedEvent.model_validate(event.model_dump(by_alias=True))
    return event


def ignore_reason(event: ObjectCreatedEvent, bucket: str, prefix: str) -> str | None:
    """Why an upload is not for this pipeline, or None when it is."""
    if event.detail.bucket.name != bucket:
        return f"ignored: bucket {event.detail.bucket.name!r} is not the uploads bucket"
    if not event.detail.object.key.startswith(prefix):
        return f"ignored: key is outside the uploads prefix {prefix!r}"
    return None


def event_id(
    bucket: str, key: str, etag: str | None, sequencer: str | None, eventbridge_id: str
) -> uuid.UUID:
    """The same upload always gives the same id, so Prefect starts one run per upload.

    S3 and EventBridge deliver at least once, and a duplicate may come in a new envelope,
    so the id is made from the object version (ETag, S3 sequencer); only when both are
    missing is the envelope's id the best there is.
    """
    version = [etag, sequencer] if etag or sequencer else [eventbridge_id]
    # JSON keeps the parts apart: an S3 key may contain any character, newlines included.
    return uuid.uuid5(EVENT_NAMESPACE, json.dumps([bucket, key, *version]))


def image(event: ObjectCreatedEvent) -> dict[str, Any]:
    """One upload as it appears in a batch event's `images` (JSON-ready)."""
    bucket, obj = event.detail.bucket.name, event.detail.object
    return {
        "bucket": bucket,
        "key": obj.key,
        "etag": obj.etag,
        "size": obj.size,
        "sequencer": obj.sequencer,
        "eventbridge_id": event.id,
        "event_id": str(event_id(bucket, obj.key, obj.etag, obj.sequencer, event.id)),
    }


def batch_event_id(image_ids: Iterable[str]) -> uuid.UUID:
    """The same set of uploads always gives the same id, in whatever order they arrived,
    so Prefect takes a retried batch (or an upload redelivered on its own) only once."""
    return uuid.uuid5(EVENT_NAMESPACE, json.dumps(sorted(set(image_ids))))


def batch_event(images: Sequence[dict[str, Any]], occurred: datetime) -> dict[str, Any]:
    """The Prefect event (JSON-ready) for uploads made by `image()`, each present once; the
    deployment trigger turns it into one flow run for all of them."""
    if not images:
        raise ValueError("a batch event needs at least one image")
    batch_id = str(batch_event_id(image["event_id"] for image in images))
    count = len(images)
    return {
        "id": batch_id,
        "occurred": occurred.isoformat(),
        "event": PREFECT_EVENT,
        "resource": {
            # Uploads come from one bucket: the webhook ignores every other.
            "prefect.resource.id": f"s3://{images[0]['bucket']}/batch/{batch_id}",
            "prefect.resource.name": f"{count} upload{'' if count == 1 else 's'}",
        },
        "payload": {"images": list(images)},
    }
