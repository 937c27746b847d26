"""Which key opens which route, over real HTTP: the webhook key admits events and nothing
else; the operator key (`Authorization: Bearer`) reads, lists and reprocesses; the original
API's route needs no key."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest

from api.deps import OPERATOR_REFUSED, WEBHOOK_REFUSED
from tests.api.conftest import bearer, eventbridge_event
from tests.api.test_images import a_completed_item
from tests.support import unique_key

REFUSED = {"message": OPERATOR_REFUSED}
Headers = list[tuple[bytes, bytes]]


@pytest.fixture
def key() -> str:
    """A key in a folder, so that no route of the original API can read it."""
    key = unique_key("photo.jpg", "access-")
    a_completed_item(key)
    return key


def routes(key: str) -> dict[str, tuple[str, str, int]]:
    """Every operator route: method, path, and its answer once the key is accepted."""
    elsewhere = f"elsewhere/{uuid.uuid4().hex}.jpg"  # no record, outside uploads/: 404
    return {
        "list": ("GET", "/images?status=COMPLETED&limit=1000", 200),
        "read": ("GET", f"/images/{key}", 200),
        "status": ("GET", f"/images/{key}/status", 200),
        "similar": ("GET", f"/images/{key}/similar", 409),  # no dHash: past the key check
        "reprocess": ("POST", f"/images/{elsewhere}/reprocess", 404),  # past the key check
    }


def send(api: str, route: tuple[str, str, int], headers: Headers) -> httpx.Response:
    method, path, _ = route
    return httpx.request(method, f"{api}{path}", headers=headers, timeout=30)


def wrong_keys(webhook_key: str, operator_key: str) -> dict[str, Headers]:
    # Bytes: a non-ASCII value must reach the comparison, not fail in the client.
    def auth(value: str) -> Headers:
        return [(b"authorization", value.encode())]

    return {
        "missing": [],
        "empty header": auth(""),
        "empty bearer": auth("Bearer"),
        "wrong bearer": auth("Bearer wrong"),
        "non-ASCII bearer": auth("Bearer ключ"),
        "operator key, other scheme": auth(f"Basic {operator_key}"),
        "operator key as x-api-key": [(b"x-api-key", operator_key.encode())],
        "webhook key as x-api-key": [(b"x-api-key", webhook_key.encode())],
        "webhook key as bearer": auth(f"Bearer {webhook_key}"),
    }


@pytest.mark.parametrize("name", ["list", "read", "status", "reprocess"])
def test_operator_routes_need_the_operator_key(
    api: str, webhook_key: str, operator_key: str, key: str, name: str
) -> None:
    route = routes(key)[name]
    for sent, headers in wrong_keys(webhook_key, operator_key).items():
        response = send(api, route, headers)
        assert response.status_code == 401, sent
        assert response.json() == REFUSED, sent
        assert response.headers["www-authenticate"] == "Bearer"

    accepted = send(api, route, [(b"authorization", f"Bearer {operator_key}".encode())])

    assert accepted.status_code == route[2], accepted.text
    if name in ("read", "status"):
        assert accepted.json()["ImageKey"] == key


def test_the_webhook_refuses_the_operator_key(
    api: str, webhook_key: str, operator_key: str
) -> None:
    event = eventbridge_event(unique_key("a.jpg"))
    for headers in ({"x-api-key": operator_key}, bearer(operator_key)):
        response = httpx.post(f"{api}/events/s3", json=event, headers=headers)
        assert response.status_code == 401
        assert response.json() == {"message": WEBHOOK_REFUSED}


def test_the_original_route_needs_no_key(api: str, webhook_key: str, operator_key: str) -> None:
    name = f"{uuid.uuid4().hex[:8]}.jpg"
    item = a_completed_item(f"uploads/{name}")

    response = httpx.get(f"{api}/images/uploads/{name}/status")

    assert response.status_code == 200
    assert response.json() == item


@pytest.fixture
def no_operator_key(
    monkeypatch: pytest.MonkeyPatch, configure: Callable[..., None]
) -> Iterator[None]:
    monkeypatch.delenv("IMAGE_PIPELINE_OPERATOR_API_KEY", raising=False)
    configure()  # resets the cached settings
    yield


def test_no_operator_key_configured_refuses_everyone(
    api: str, webhook_key: str, no_operator_key: None, key: str, caplog: pytest.LogCaptureFixture
) -> None:
    sent = [[], [(b"authorization", b"Bearer")], [(b"authorization", b"Bearer anything")]]
    sent.append([(b"authorization", f"Bearer {webhook_key}".encode())])
    for route in routes(key).values():
        for headers in sent:
            assert send(api, route, headers).json() == REFUSED
    assert "IMAGE_PIPELINE_OPERATOR_API_KEY is not set" in caplog.text


def test_an_operator_key_equal_to_the_webhook_key_opens_nothing(
    api: str, configure: Callable[..., None], key: str, caplog: pytest.LogCaptureFixture
) -> None:
    shared = f"shared-{uuid.uuid4().hex}"
    configure(webhook_api_key=shared, operator_api_key=shared)
    for route in routes(key).values():
        assert send(api, route, [(b"authorization", f"Bearer {shared}".encode())]).json() == REFUSED
    assert "the operator key must differ from the webhook key" in caplog.text
