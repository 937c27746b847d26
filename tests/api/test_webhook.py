"""`POST /events/s3` over real HTTP, with a real (temporary) Prefect server behind it."""

from __future__ import annotations

import http.client
import json
import socket
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest
from prefect.settings import PREFECT_API_KEY, PREFECT_API_URL, temporary_settings

from api.events import event_id
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


def expected_id(event: dict) -> str:
    obj = event["detail"]["object"]
    bucket = event["detail"]["bucket"]["name"]
    return str(event_id(bucket, obj["key"], obj.get("etag"), obj.get("sequencer"), event["id"]))


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
    wait_for_prefect_events([expected_id(marker)])
    assert prefect_events([expected_id(event) for event in ignored.values()]) == []


# --- accepted events -------------------------------------------------------------------------


def test_accepted_event_reaches_prefect_with_a_deterministic_id_and_the_raw_key(
    api: str, webhook_key: str
) -> None:
    key = unique_key("x y+z%20é.jpg")
    event = eventbridge_event(key, etag="abc123", sequencer="0062A1B2C3", size=321)
    response = post(api, event, webhook_key)
    assert response.status_code == 202
    assert response.json() == {
        "message": "accepted",
        "accepted": True,
        "event_id": expected_id(event),
    }

    [stored] = wait_for_prefect_events([expected_id(event)])
    assert stored["event"] == "aws.s3.object.created"
    bucket = get_settings().uploads_bucket
    assert stored["resource"]["prefect.resource.id"] == f"s3://{bucket}/{key}"
    assert stored["resource"]["prefect.resource.name"] == key
    assert stored["payload"] == {
        "bucket": bucket,
        "key": key,
        "etag": "abc123",
        "size": 321,
        "sequencer": "0062A1B2C3",
        "eventbridge_id": event["id"],
    }


def test_event_without_etag_and_sequencer_is_accepted(api: str, webhook_key: str) -> None:
    event = eventbridge_event(unique_key("a.jpg"), etag=None, sequencer=None, size=None)
    response = post(api, event, webhook_key)
    assert response.status_code == 202
    [stored] = wait_for_prefect_events([response.json()["event_id"]])
    assert stored["payload"]["eventbridge_id"] == event["id"]


def test_the_same_upload_delivered_twice_is_one_prefect_event(api: str, webhook_key: str) -> None:
    event = eventbridge_event(unique_key("twice.jpg"))
    redelivered = event | {"id": str(uuid.uuid4())}  # a duplicate in a new envelope
    first = post(api, event, webhook_key)
    again = post(api, event, webhook_key)
    third = post(api, redelivered, webhook_key)
    assert first.status_code == again.status_code == third.status_code == 202
    ids = {r.json()["event_id"] for r in (first, again, third)}
    assert ids == {expected_id(event)}
    assert len(wait_for_prefect_events(list(ids))) == 1


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
    assert [e["id"] for e in sent["json"]] == [expected_id(event)]
    assert secret not in caplog.text
    assert webhook_key not in caplog.text
