"""One local stack (MiniStack, Prefect server, worker, API on free ports) for every e2e test.

Starting it takes the better part of a minute, so all the tests of this folder share it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import boto3
import httpx
import pytest

from deployments.local import stack
from deployments.local.processes import wait_until
from image_pipeline.runs import uploads_in
from image_pipeline.settings import Settings
from tests.fakes.rekognition import FakeRekognition
from tests.support import Notices

SETTINGS = Settings()


@pytest.fixture(scope="package")
def rekognition() -> Iterator[FakeRekognition]:
    """Rekognition for the stack (it cannot run here): the fake, reading MiniStack's S3."""
    fake = FakeRekognition()
    with fake:
        yield fake


# What the stack said as it started: a line at the start and at the end of each phase.
START_LINES: list[str] = []

# A key with this in it kills the flow-run process that validates it.
CRASH_MARKER = "crash-the-process"


@pytest.fixture(scope="package")
def services(
    tmp_path_factory: pytest.TempPathFactory, rekognition: FakeRekognition
) -> Iterator[stack.Running]:
    state = tmp_path_factory.mktemp("stack")
    ports = stack.Ports.free()
    rekognition.s3_endpoint_url = f"http://127.0.0.1:{ports.ministack}"
    the_stack = stack.Stack(
        ports=ports,
        state=state,
        api_key=uuid.uuid4().hex,
        operator_key=uuid.uuid4().hex,
        extra_env=(
            ("IMAGE_PIPELINE_REKOGNITION_ENDPOINT_URL", rekognition.url),
            # The outage tests hold the labels step's request; moderation has its own tests.
            ("IMAGE_PIPELINE_MODERATION", "off"),
            # The stack's own default is local labels; these tests use the stand-in.
            ("IMAGE_PIPELINE_LABELS", "rekognition"),
            ("IMAGE_PIPELINE_CRASH_MARKER", CRASH_MARKER),
            # Uploads of one test land in one batch however busy the machine is.
            ("IMAGE_PIPELINE_BATCH_WINDOW_SECONDS", "1.0"),
            ("IMAGE_PIPELINE_BATCH_QUIET_SECONDS", "1.0"),
        ),
    )
    try:
        with stack.running(the_stack, worker_limit=4, say=START_LINES.append) as running:
            yield running
    finally:
        _print_logs(state)


@pytest.fixture(scope="package")
def local(services: stack.Running) -> stack.Stack:
    return services.stack


@pytest.fixture(scope="module")
def notices(local: stack.Stack) -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """Every SNS notice since the module started, from an SQS queue subscribed to the topic."""
    sns = aws(local, "sns")
    queue = Notices(aws(local, "sqs"), sns, sns.create_topic(Name=SETTINGS.topic_name)["TopicArn"])
    try:
        yield lambda: (queue.drain(), queue.received)[1]
    finally:
        queue.close()


def notices_for(notices: Callable[[], list[dict[str, Any]]], key: str) -> list[dict[str, Any]]:
    return [n for n in notices() if n["MessageAttributes"]["imageId"]["Value"] == key]


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
    url = f"{local.api_url}/images/{quote(key, safe='/')}/status"
    response = httpx.get(url, headers=local.operator_headers, timeout=5)
    return response.json() if response.status_code == 200 else None


def wait_for_status(local: stack.Stack, key: str, *wanted: str) -> dict[str, Any]:
    """The item once its status is one of `wanted`."""
    wait_until(
        lambda: (status(local, key) or {}).get("overall_processing_status") in wanted,
        timeout=120,
        what=f"{key} to be {' or '.join(wanted)}",
    )
    item = status(local, key)
    assert item is not None
    return item


def wait_for_final(local: stack.Stack, key: str) -> dict[str, Any]:
    return wait_for_status(local, key, "COMPLETED", "FAILED")


def process_image_runs(local: stack.Stack, **flow_runs: Any) -> list[dict[str, Any]]:
    """process-image and process-images runs matching a Prefect `flow_runs` filter."""
    response = httpx.post(
        f"{local.prefect_url}/api/flow_runs/filter",
        json={
            "flows": {"name": {"any_": ["process-image", "process-images"]}},
            "flow_runs": flow_runs,
            "limit": 200,
        },
        timeout=10,
    )
    response.raise_for_status()
    return response.json()


def keys_of(run: dict[str, Any]) -> list[str]:
    """The keys a run (as the Prefect API answers it) is about."""
    return [upload.key for upload in uploads_in(run.get("parameters") or {})]


def flow_runs_for(local: stack.Stack, key: str) -> list[dict[str, Any]]:
    """The runs that were about `key`: its own process-image runs, or batches holding it."""
    return [run for run in process_image_runs(local) if key in keys_of(run)]


UNFINISHED = ["SCHEDULED", "PENDING", "RUNNING", "CANCELLING"]


def wait_for_idle(local: stack.Stack) -> None:
    """No flow run in flight: stopping a service now interrupts no other test's image."""

    def idle() -> bool:
        return not process_image_runs(local, state={"type": {"any_": UNFINISHED}})

    wait_until(idle, timeout=120, what="no flow run in flight")
