"""`POST /events/s3` over real HTTP, with a real (temporary) Prefect server behind it."""

from __future__ import annotations

import http.client
import json
import socket
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from prefect.settings import PREFECT_API_KEY, PREFECT_API_URL, temporary_settings

from api.events import batch_event_id, event_id
from deployments.local.processes import free_port
from image_pipeline.settings import get_settings
from tests.api.conftest import (
    FakePrefect,
    eventbridge_event,
    headers,
    prefect_events,
    serve,
    wait_for_prefect_events,
)
from tests.support import unique_key

pytestmark = pytest.mark.usefixtures("prefect_server")

UNAVAILABLE = {"message": "Prefect is unavailable; EventBridge will retry."}


def post(api: str, body: object, api_key: str | None, **kwargs: object) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    sent = headers(api_key) if api_key is not None else {}
    return httpx.post(f"{api}/events/s3", content=content, headers=sent, **kwargs)


def post_together(
    api: str, events: list[dict], api_key: str, timeout: float = 30
) -> list[httpx.Response]:
    """Deliver `events` at once, as EventBridge does in a burst; the answers in that order."""
    with ThreadPoolExecutor(len(events)) as pool:
        return list(pool.map(lambda event: post(api, event, api_key, timeout=timeout), events))


def burst_to_fake_prefect(
    events: list[dict], api_key: str, status: int = 204, timeout: float = 30
) -> tuple[list[httpx.Response], list[dict]]:
    """Deliver `events` at once to an app whose Prefect is a `FakePrefect` answering
    `status`; the answers, and what the fake received."""
    with (
        FakePrefect(status=status) as prefect,
        temporary_settings(updates={PREFECT_API_URL: prefect.api_url}),
        serve() as api,
    ):
        return post_together(api, events, api_key, timeout=timeout), prefect.requests


def expected_id(event: dict) -> str:
    """The upload's own id (`image_event_id`)."""
    obj = event["detail"]["object"]
    bucket = event["detail"]["bucket"]["name"]
    return str(event_id(bucket, obj["key"], obj.get("etag"), obj.get("sequencer"), event["id"]))


def batch_id(*events: dict) -> str:
    """The id of the Prefect event that carries these uploads."""
    return str(batch_event_id(expected_id(event) for event in events))


def image(event: dict) -> dict:
    """The upload as the Prefect event's `images` lists it."""
    obj = event["detail"]["object"]
    return {
        "bucket": event["detail"]["bucket"]["name"],
        "key": obj["key"],
        "etag": obj.get("etag"),
        "size": obj.get("size"),
        "sequencer": obj.get("sequencer"),
        "eventbridge_id": event["id"],
        "event_id": expected_id(event),
    }


def by_key(images: Iterable[dict]) -> list[dict]:
    """In a batch, images come in order of arrival; concurrent requests have none."""
    return sorted(images, key=lambda i: i["key"])


@pytest.fixture
def window(configure: Callable[..., None], webhook_key: str) -> float:
    """A window that a burst of local requests surely falls within (a quiet gap as long:
    however slow the machine, the requests go in one batch)."""
    configure(batch_window_seconds=2, batch_quiet_seconds=2)
    return 2.0


@pytest.fixture
def no_webhook_key(
    monkeypatch: pytest.MonkeyPatch, configure: Callable[..., None]
) -> Iterator[None]:
    monkeypatch.delenv("IMAGE_PIPELINE_WEBHOOK_API_KEY", raising=False)
    configure()  # resets the cached settings
    yield


# --- authentication ----------------------------------------------------------------------


@pytest.mark.parametrize("sent", [None, "wrong", "", "ключ"])
def test_missing_or_wrong_key_is_401(
    api: str, webhook_key: str, sent: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    if sent == "ключ":  # a non-ASCII header value must not crash the comparison
        response = httpx.post(
            f"{api}/events/s3", content=b"{}", headers=[(b"x-api-key", sent.encode())]
        )
    else:
        response = post(api, eventbridge_event(unique_key("a.jpg")), sent)
    assert response.status_code == 401
    assert response.json() == {"message": "Missing or invalid x-api-key header."}
    assert webhook_key not in caplog.text


def test_no_key_configured_refuses_every_request(
    api: str, no_webhook_key: None, caplog: pytest.LogCaptureFixture
) -> None:
    for sent in (None, "", "anything"):
        response = post(api, eventbridge_event(unique_key("a.jpg")), sent)
        assert response.status_code == 401
        assert "message" in response.json()
    assert "IMAGE_PIPELINE_WEBHOOK_API_KEY is not set" in caplog.text


def test_key_is_checked_before_size_and_shape(api: str, webhook_key: str) -> None:
    big = b"x" * (get_settings().webhook_max_body_bytes + 1)
    assert post(api, big, "wrong").status_code == 401
    assert post(api, b"{not json", None).status_code == 401


# --- body size ---------------------------------------------------------------------------


@pytest.fixture
def small_limit(webhook_key: str, configure: Callable[..., None]) -> int:
    configure(webhook_api_key=webhook_key, webhook_max_body_bytes=2000)
    return 2000


def test_body_over_the_limit_is_413(api: str, webhook_key: str, small_limit: int) -> None:
    response = post(api, b" " * (small_limit + 1), webhook_key)
    assert response.status_code == 413
    assert response.json() == {"message": "The body is larger than 2000 bytes."}


def test_body_at_the_limit_is_read(api: str, webhook_key: str, small_limit: int) -> None:
    response = post(api, b" " * small_limit, webhook_key)
    assert response.status_code == 422  # read and parsed: blank is not JSON


def test_chunked_body_over_the_limit_is_413(api: str, webhook_key: str, small_limit: int) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: only counting the bytes can tell
        for _ in range(10):
            yield b" " * 500

    response = httpx.post(f"{api}/events/s3", content=chunks(), headers=headers(webhook_key))
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert response.status_code == 413


def test_declared_length_over_the_limit_is_413_before_the_body_arrives(
    api: str, webhook_key: str, small_limit: int
) -> None:
    # A client that claims 10 MB and sends two bytes: answered from the header alone.
    host, port = api.removeprefix("http://").split(":")
    request = (
        f"POST /events/s3 HTTP/1.1\r\nHost: {host}\r\nx-api-key: {webhook_key}\r\n"
        "Content-Type: application/json\r\nContent-Length: 10000000\r\n\r\n{}"
    )
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(request.encode())
        reply = http.client.HTTPResponse(conn)
        reply.begin()
        assert reply.status == 413
        assert json.loads(reply.read()) == {"message": "The body is larger than 2000 bytes."}


# --- shape ---------------------------------------------------------------------------------


def test_malformed_json_is_422(api: str, webhook_key: str) -> None:
    response = post(api, b'{"version": "0", ', webhook_key)
    assert response.status_code == 422
    body = response.json()
    assert body["message"] == "The body is not valid JSON."
    assert body["detail"][0]["type"] == "json_invalid"


def _without_object_key(event: dict) -> dict:
    del event["detail"]["object"]["key"]
    return event


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ([], []),
        ({"hello": "world"}, ["id"]),
        (eventbridge_event("uploads/a.jpg") | {"source": "aws.ec2"}, ["source"]),
        (eventbridge_event("uploads/a.jpg") | {"time": "yesterday"}, ["time"]),
        (eventbridge_event("uploads/a.jpg") | {"detail": "x"}, ["detail"]),
        (_without_object_key(eventbridge_event("uploads/a.jpg")), ["detail", "object", "key"]),
        (eventbridge_event("uploads/a.jpg", size=-1), ["detail", "object", "size"]),
    ],
)
def test_not_an_object_created_event_is_422(
    api: str, webhook_key: str, body: object, where: list[str]
) -> None:
    response = post(api, body, webhook_key)
    assert response.status_code == 422
    answer = response.json()
    assert answer["message"] == 'The body is not an EventBridge S3 "Object Created" event.'
    assert where in [error["loc"] for error in answer["detail"]] or where == []


# --- events that are not for us ------------------------------------------------------------


def test_events_not_for_the_pipeline_are_acknowledged_and_never_reach_prefect(
    api: str, webhook_key: str
) -> None:
    ignored = {
        "ignored: bucket 'someone-elses' is not the uploads bucket": eventbridge_event(
            unique_key("a.jpg"), bucket="someone-elses"
        ),
        "ignored: key is outside the uploads prefix 'uploads/'": eventbridge_event(
            "thumbnails/" + unique_key("a.jpg")
        ),
        "ignored: detail-type 'Object Deleted' is not 'Object Created'": eventbridge_event(
            unique_key("a.jpg"), detail_type="Object Deleted"
        ),
    }
    for reason, event in ignored.items():
        response = post(api, event, webhook_key)
        assert response.status_code == 200
        assert response.json() == {"message": reason, "accepted": False}

    # Prefect stores events in order of arrival: once a later event is stored, an
    # ignored one would be too, had it been sent.
    marker = eventbridge_event(unique_key("marker.jpg"))
    assert post(api, marker, webhook_key).status_code == 202
    wait_for_prefect_events([batch_id(marker)])
    assert prefect_events([batch_id(event) for event in ignored.values()]) == []


# --- accepted events -------------------------------------------------------------------------


def test_a_lone_upload_reaches_prefect_as_a_batch_of_one_with_the_raw_key(
    api: str, webhook_key: str
) -> None:
    key = unique_key("x y+z%20é.jpg")
    event = eventbridge_event(key, etag="abc123", sequencer="0062A1B2C3", size=321)
    response = post(api, event, webhook_key)  # answered once its window has passed
    assert response.status_code == 202
    assert response.json() == {
        "message": "accepted",
        "accepted": True,
        "event_id": batch_id(event),
        "image_event_id": expected_id(event),
    }

    [stored] = wait_for_prefect_events([batch_id(event)])
    assert stored["event"] == "aws.s3.objects.created"
    bucket = get_settings().uploads_bucket
    assert stored["resource"]["prefect.resource.id"] == f"s3://{bucket}/batch/{batch_id(event)}"
    assert stored["resource"]["prefect.resource.name"] == "1 upload"
    assert stored["payload"] == {
        "images": [
            {
                "bucket": bucket,
                "key": key,
                "etag": "abc123",
                "size": 321,
                "sequencer": "0062A1B2C3",
                "eventbridge_id": event["id"],
                "event_id": expected_id(event),
            }
        ]
    }


def test_event_without_etag_and_sequencer_is_accepted(api: str, webhook_key: str) -> None:
    event = eventbridge_event(unique_key("a.jpg"), etag=None, sequencer=None, size=None)
    response = post(api, event, webhook_key)
    assert response.status_code == 202
    [stored] = wait_for_prefect_events([response.json()["event_id"]])
    assert stored["payload"]["images"] == [image(event)]


def test_the_same_upload_delivered_twice_is_one_prefect_event(api: str, webhook_key: str) -> None:
    event = eventbridge_event(unique_key("twice.jpg"))
    redelivered = event | {"id": str(uuid.uuid4())}  # a duplicate in a new envelope
    first = post(api, event, webhook_key)
    again = post(api, event, webhook_key)
    third = post(api, redelivered, webhook_key)
    assert first.status_code == again.status_code == third.status_code == 202
    ids = {r.json()["event_id"] for r in (first, again, third)}
    assert ids == {batch_id(event)}  # each a batch of one: the same set, the same id
    assert len(wait_for_prefect_events(list(ids))) == 1


def test_uploads_delivered_together_are_one_prefect_event(
    api: str, webhook_key: str, window: float
) -> None:
    events = [eventbridge_event(unique_key(f"{n}.jpg", "burst/")) for n in range(5)]
    responses = post_together(api, events, webhook_key)
    assert [r.status_code for r in responses] == [202] * 5
    assert {r.json()["event_id"] for r in responses} == {batch_id(*events)}
    assert [r.json()["image_event_id"] for r in responses] == [expected_id(e) for e in events]

    [stored] = wait_for_prefect_events([batch_id(*events)])
    assert stored["event"] == "aws.s3.objects.created"
    assert stored["resource"]["prefect.resource.name"] == "5 uploads"
    assert by_key(stored["payload"]["images"]) == by_key(image(e) for e in events)


# --- batching, against a stand-in Prefect that records what it is sent ---------------------


def test_a_burst_within_the_window_is_one_event_of_every_upload(
    webhook_key: str, window: float
) -> None:
    events = [eventbridge_event(unique_key(f"{n}.jpg")) for n in range(8)]
    responses, requests = burst_to_fake_prefect(events, webhook_key)
    assert [r.status_code for r in responses] == [202] * 8
    assert {r.json()["event_id"] for r in responses} == {batch_id(*events)}
    [sent] = requests
    [event] = sent["json"]
    assert event["id"] == batch_id(*events)
    assert by_key(event["payload"]["images"]) == by_key(image(e) for e in events)


def test_a_full_batch_is_sent_without_waiting_for_the_window(
    webhook_key: str, configure: Callable[..., None]
) -> None:
    configure(
        webhook_api_key=webhook_key,
        batch_window_seconds=30,
        batch_quiet_seconds=30,
        batch_max_images=3,
    )
    events = [eventbridge_event(unique_key(f"{n}.jpg")) for n in range(3)]
    # Far shorter than the window: a request that waited for it times out.
    responses, requests = burst_to_fake_prefect(events, webhook_key, timeout=10)
    assert [r.status_code for r in responses] == [202] * 3
    [sent] = requests
    assert [e["id"] for e in sent["json"]] == [batch_id(*events)]
    assert len(sent["json"][0]["payload"]["images"]) == 3


def test_duplicates_within_a_batch_are_one_image(webhook_key: str, window: float) -> None:
    event = eventbridge_event(unique_key("a.jpg"))
    redelivered = event | {"id": str(uuid.uuid4())}
    other = eventbridge_event(unique_key("b.jpg"))
    responses, requests = burst_to_fake_prefect([event, redelivered, other], webhook_key)
    assert [r.status_code for r in responses] == [202] * 3
    assert {r.json()["event_id"] for r in responses} == {batch_id(event, other)}
    assert responses[0].json()["image_event_id"] == responses[1].json()["image_event_id"]
    [sent] = requests
    keys = [i["key"] for i in sent["json"][0]["payload"]["images"]]
    assert sorted(keys) == sorted(
        [event["detail"]["object"]["key"], other["detail"]["object"]["key"]]
    )


# --- Prefect trouble ---------------------------------------------------------------------------


def test_prefect_unreachable_is_503(webhook_key: str, caplog: pytest.LogCaptureFixture) -> None:
    closed = f"http://127.0.0.1:{free_port()}/api"
    with temporary_settings(updates={PREFECT_API_URL: closed}), serve() as api:
        response = post(api, eventbridge_event(unique_key("a.jpg")), webhook_key)
    assert response.status_code == 503
    assert response.json() == UNAVAILABLE
    assert "Prefect did not take event" in caplog.text


def test_prefect_error_is_503_and_the_api_key_is_sent_but_never_logged(
    webhook_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    secret = f"pnu_{uuid.uuid4().hex}"
    event = eventbridge_event(unique_key("a.jpg"))
    with FakePrefect(status=500) as prefect:
        updates = {PREFECT_API_URL: prefect.api_url, PREFECT_API_KEY: secret}
        with temporary_settings(updates=updates), serve() as api:
            response = post(api, event, webhook_key)
    assert response.status_code == 503
    assert response.json() == UNAVAILABLE
    [sent] = prefect.requests
    assert sent["path"] == "/api/events"
    assert sent["headers"]["Authorization"] == f"Bearer {secret}"
    assert [e["id"] for e in sent["json"]] == [batch_id(event)]
    assert secret not in caplog.text
    assert webhook_key not in caplog.text


def test_a_prefect_error_is_503_for_every_upload_of_the_batch(
    webhook_key: str, window: float
) -> None:
    events = [eventbridge_event(unique_key(f"{n}.jpg")) for n in range(4)]
    responses, requests = burst_to_fake_prefect(events, webhook_key, status=500)
    assert [r.status_code for r in responses] == [503] * 4
    assert all(r.json() == UNAVAILABLE for r in responses)
    [sent] = requests  # one attempt for the batch; EventBridge retries each upload
    assert len(sent["json"][0]["payload"]["images"]) == 4
