"""The pure event functions: parsing, filtering and the Prefect event's shape."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from api.events import (
    EXAMPLE_EVENT,
    PREFECT_EVENT,
    ObjectCreatedEvent,
    S3Event,
    batch_event,
    batch_event_id,
    event_id,
    ignore_reason,
    image,
    parse,
)
from tests.api.conftest import eventbridge_event

BUCKET = "uploads-bucket"


def created(key: str = "uploads/x y+z.jpg", **fields: object) -> ObjectCreatedEvent:
    event = parse(json.dumps(eventbridge_event(key, bucket=BUCKET, **fields)).encode())
    assert isinstance(event, ObjectCreatedEvent)
    return event


def test_event_id_is_the_same_for_the_same_upload() -> None:
    first = event_id(BUCKET, "uploads/a.jpg", "etag", "SEQ1", "eventbridge-1")
    again = event_id(BUCKET, "uploads/a.jpg", "etag", "SEQ1", "eventbridge-2")
    assert first == again
    assert first.version == 5


@pytest.mark.parametrize(
    "other",
    [
        ("other-bucket", "uploads/a.jpg", "etag", "SEQ1"),
        (BUCKET, "uploads/b.jpg", "etag", "SEQ1"),
        (BUCKET, "uploads/a.jpg", "etag2", "SEQ1"),
        (BUCKET, "uploads/a.jpg", "etag", "SEQ2"),  # same bytes uploaded again
    ],
)
def test_event_id_differs_for_another_upload(other: tuple[str, str, str, str]) -> None:
    assert event_id(BUCKET, "uploads/a.jpg", "etag", "SEQ1", "eb") != event_id(*other, "eb")


def test_event_id_falls_back_to_the_eventbridge_id_without_etag_and_sequencer() -> None:
    first = event_id(BUCKET, "uploads/a.jpg", None, None, "eventbridge-1")
    assert first == event_id(BUCKET, "uploads/a.jpg", None, None, "eventbridge-1")
    assert first != event_id(BUCKET, "uploads/a.jpg", None, None, "eventbridge-2")


def test_event_id_keeps_key_parts_apart() -> None:
    assert event_id(BUCKET, "a\nb", "c", None, "e") != event_id(BUCKET, "a", "b\nc", None, "e")


def test_image_carries_the_raw_key_the_object_version_and_its_own_id() -> None:
    event = created("uploads/x y+z%20é.jpg", etag="abc", sequencer="0062", size=123)
    assert image(event) == {
        "bucket": BUCKET,
        "key": "uploads/x y+z%20é.jpg",
        "etag": "abc",
        "size": 123,
        "sequencer": "0062",
        "eventbridge_id": event.id,
        "event_id": str(event_id(BUCKET, "uploads/x y+z%20é.jpg", "abc", "0062", event.id)),
    }


def test_optional_object_fields_may_be_absent() -> None:
    event = created(etag=None, size=None, sequencer=None)
    assert image(event) == {
        "bucket": BUCKET,
        "key": "uploads/x y+z.jpg",
        "etag": None,
        "size": None,
        "sequencer": None,
        "eventbridge_id": event.id,
        "event_id": str(event_id(BUCKET, "uploads/x y+z.jpg", None, None, event.id)),
    }


def test_batch_event_carries_every_image_under_one_id() -> None:
    images = [image(created("uploads/a.jpg")), image(created("uploads/b c.jpg", etag="e2"))]
    occurred = datetime(2024, 11, 27, 14, 32, tzinfo=UTC)
    out = batch_event(images, occurred)
    batch_id = str(batch_event_id([images[0]["event_id"], images[1]["event_id"]]))
    assert out == {
        "id": batch_id,
        "occurred": "2024-11-27T14:32:00+00:00",
        "event": PREFECT_EVENT,
        "resource": {
            "prefect.resource.id": f"s3://{BUCKET}/batch/{batch_id}",
            "prefect.resource.name": "2 uploads",
        },
        "payload": {"images": images},
    }
    assert PREFECT_EVENT == "aws.s3.objects.created"
    assert uuid.UUID(batch_id).version == 5
    json.dumps(out)  # ready to post as is


def test_a_batch_of_one_is_one_upload() -> None:
    out = batch_event([image(created())], datetime.now(UTC))
    assert out["resource"]["prefect.resource.name"] == "1 upload"
    assert len(out["payload"]["images"]) == 1


def test_an_empty_batch_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one image"):
        batch_event([], datetime.now(UTC))


def test_batch_event_id_depends_on_the_set_of_images_only() -> None:
    a, b, c = (str(uuid.uuid4()) for _ in range(3))
    assert batch_event_id([a, b]) == batch_event_id([b, a]) == batch_event_id([a, b, a])
    assert batch_event_id([a, b]) != batch_event_id([a, c])
    assert batch_event_id([a]) != batch_event_id([a, b])


def test_a_retried_batch_gets_the_same_event_id() -> None:
    # The same uploads delivered again, in new envelopes and in another order.
    events = [created("uploads/a.jpg"), created("uploads/b.jpg")]
    again = [created("uploads/b.jpg"), created("uploads/a.jpg")]
    now = datetime.now(UTC)
    first = batch_event([image(e) for e in events], now)
    retried = batch_event([image(e) for e in again], now)
    envelopes = [{i["eventbridge_id"] for i in e["payload"]["images"]} for e in (first, retried)]
    assert envelopes[0].isdisjoint(envelopes[1])
    assert first["id"] == retried["id"]


def test_other_detail_types_parse_as_the_bare_envelope() -> None:
    body = eventbridge_event("uploads/a.jpg", detail_type="Object Deleted")
    del body["detail"]["object"]["size"]
    event = parse(json.dumps(body).encode())
    assert type(event) is S3Event
    assert event.detail_type == "Object Deleted"


@pytest.mark.parametrize(
    ("bucket", "key", "reason"),
    [
        (BUCKET, "uploads/a.jpg", None),
        ("other", "uploads/a.jpg", "ignored: bucket 'other' is not the uploads bucket"),
        (BUCKET, "thumbnails/a.jpg", "ignored: key is outside the uploads prefix 'uploads/'"),
        (BUCKET, "uploadsX/a.jpg", "ignored: key is outside the uploads prefix 'uploads/'"),
    ],
)
def test_ignore_reason(bucket: str, key: str, reason: str | None) -> None:
    event = parse(json.dumps(eventbridge_event(key, bucket=bucket)).encode())
    assert isinstance(event, ObjectCreatedEvent)
    assert ignore_reason(event, BUCKET, "uploads/") == reason


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[]",
        b"{}",
        json.dumps(eventbridge_event("uploads/a.jpg") | {"source": "aws.ec2"}).encode(),
        json.dumps(eventbridge_event("uploads/a.jpg") | {"time": "2024-01-01T00:00:00"}).encode(),
        json.dumps(eventbridge_event("")).encode(),
    ],
)
def test_parse_refuses_what_is_not_an_s3_event(body: bytes) -> None:
    with pytest.raises(ValidationError):
        parse(body)


def test_the_documented_example_is_accepted() -> None:
    event = parse(json.dumps(EXAMPLE_EVENT).encode())
    assert isinstance(event, ObjectCreatedEvent)
    assert ignore_reason(event, "image-pipeline-uploads", "uploads/") is None
    assert image(event)["key"] == "uploads/x y+z.jpg"
