"""The real app under uvicorn on 127.0.0.1, spoken to over HTTP; EventBridge-shaped events."""

from __future__ import annotations

import contextlib
import contextvars
import json
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from prefect.settings import get_current_settings

from api.main import app
from deployments.local.processes import wait_until
from image_pipeline.settings import get_settings


@contextlib.contextmanager
def serve(application: FastAPI = app) -> Iterator[str]:
    """Run the app in a background thread on a free port; yield its base URL."""
    # Bound here and handed to uvicorn, so no other process can take the port meanwhile.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(application, log_config=None, lifespan="on"))
    # A thread starts with an empty context; run it in a copy of this one so that Prefect's
    # settings context (the test harness, `temporary_settings`) reaches the routes.
    context = contextvars.copy_context()
    thread = threading.Thread(target=context.run, args=(server.run, [sock]), daemon=True)
    thread.start()
    try:
        wait_until(
            lambda: server.started or not thread.is_alive(), timeout=30, what="the API to start"
        )
        if not server.started:
            raise RuntimeError("uvicorn stopped during startup; see the captured log")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


@pytest.fixture
def api(aws_stack: str) -> Iterator[str]:
    """Base URL of the app, started for this test (so it sees this test's Prefect settings)."""
    with serve() as url:
        yield url


@pytest.fixture
def webhook_key(configure: Callable[..., None]) -> str:
    key = f"key-{uuid.uuid4().hex}"
    configure(webhook_api_key=key)
    return key


def bearer(key: str) -> dict[str, str]:
    # An empty key is sent as `Bearer` alone: HTTP forbids the trailing space of `Bearer `.
    return {"Authorization": f"Bearer {key}".rstrip()}


@pytest.fixture
def operator(api: str, operator_key: str) -> Iterator[httpx.Client]:
    """A client of the app that sends the operator key."""
    with httpx.Client(base_url=api, headers=bearer(operator_key), timeout=30) as client:
        yield client


def eventbridge_event(
    key: str,
    *,
    bucket: str | None = None,
    detail_type: str = "Object Created",
    etag: str | None = "d41d8cd98f00b204e9800998ecf8427e",
    sequencer: str | None = "0062E99A88DC407460",
    size: int | None = 1234,
    event_id: str | None = None,
) -> dict[str, Any]:
    """An event as EventBridge's API destination posts it; the key is raw, as S3 sends it."""
    bucket = bucket or get_settings().uploads_bucket
    obj: dict[str, Any] = {"key": key}
    optional = {"size": size, "etag": etag, "sequencer": sequencer}
    obj |= {name: value for name, value in optional.items() if value is not None}
    return {
        "version": "0",
        "id": event_id or str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": "aws.s3",
        "account": "000000000000",
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": "us-east-1",
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket},
            "object": obj,
            "request-id": "N4N7GDK58NMKJ12R",
            "requester": "000000000000",
            "source-ip-address": "127.0.0.1",
            "reason": "PutObject",
        },
    }


def headers(api_key: str) -> dict[str, str]:
    return {"x-api-key": api_key, "User-Agent": "Amazon/EventBridge/ApiDestinations"}


def prefect_events(ids: list[str]) -> list[dict[str, Any]]:
    """Events with these ids as Prefect stored them (`POST /events/filter`)."""
    now = datetime.now(UTC)
    body = {
        "filter": {
            "id": {"id": ids},
            "occurred": {
                "since": (now - timedelta(days=1)).isoformat(),
                "until": (now + timedelta(days=1)).isoformat(),
            },
        },
        "limit": 50,
    }
    response = httpx.post(f"{get_current_settings().api.url}/events/filter", json=body)
    response.raise_for_status()
    return response.json()["events"]


def wait_for_prefect_events(ids: list[str], timeout: float = 30) -> list[dict[str, Any]]:
    """Prefect stores events asynchronously: poll until all of `ids` are there."""
    found: list[dict[str, Any]] = []

    def arrived() -> bool:
        found[:] = prefect_events(ids)
        return {event["id"] for event in found} == set(ids)

    wait_until(arrived, timeout=timeout, what=f"Prefect to store the events {ids}")
    return found


class FakePrefect:
    """A stand-in Prefect API that records what it receives and answers `status` with
    `body` (JSON) to every POST, and `get_status` to every GET."""

    def __init__(self, status: int = 204, body: Any = None, get_status: int = 404) -> None:
        self.status = status
        self.requests: list[dict[str, Any]] = []
        fake = self
        content = b"" if body is None else json.dumps(body).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                fake.requests.append(
                    {"path": self.path, "headers": dict(self.headers), "json": json.loads(body)}
                )
                self.answer(fake.status, content)

            def do_GET(self) -> None:
                fake.requests.append({"path": self.path, "headers": dict(self.headers)})
                self.answer(get_status, b"")

            def answer(self, status: int, content: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.api_url = f"http://127.0.0.1:{self.server.server_address[1]}/api"

    def __enter__(self) -> FakePrefect:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
