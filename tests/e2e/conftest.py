"""One local stack (MiniStack, Prefect server, worker, API on free ports) for every e2e test.

Starting it takes the better part of a minute, so all the tests of this folder share it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import boto3
import httpx
import pytest

from deployments.local import stack
from deployments.local.processes import wait_until
from tasks.settings import Settings

SETTINGS = Settings()


@pytest.fixture(scope="package")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[stack.Stack]:
    state = tmp_path_factory.mktemp("stack")
    the_stack = stack.Stack(ports=stack.Ports.free(), state=state, api_key=uuid.uuid4().hex)
    try:
        with stack.running(the_stack, worker_limit=4):
            yield the_stack
    finally:
        _print_logs(state)


def _print_logs(state: Path) -> None:
    """Shown by pytest only when a test failed."""
    for log in sorted((state / "logs").glob("*.log")):
        print(f"----- {log.name} (tail) -----\n{log.read_text(errors='replace')[-3000:]}")


def aws(local: stack.Stack, service: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=local.ministack_url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


def status(local: stack.Stack, key: str) -> dict[str, Any] | None:
    response = httpx.get(f"{local.api_url}/images/{quote(key, safe='/')}/status", timeout=5)
    return response.json() if response.status_code == 200 else None


def wait_for_final(local: stack.Stack, key: str) -> dict[str, Any]:
    wait_until(
        lambda: (
            (status(local, key) or {}).get("overall_processing_status") in ("COMPLETED", "FAILED")
        ),
        timeout=120,
        what=f"a final status for {key}",
    )
    item = status(local, key)
    assert item is not None
    return item


def flow_runs_for(local: stack.Stack, key: str) -> list[dict[str, Any]]:
    response = httpx.post(
        f"{local.prefect_url}/api/flow_runs/filter",
        json={"flow_runs": {"name": {"any_": [key]}}},
        timeout=10,
    )
    response.raise_for_status()
    return response.json()
