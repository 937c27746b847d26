"""Real servers for the tests: MiniStack on a free port and a temporary Prefect server."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import pytest
from PIL import Image

from deployments.local import processes
from deployments.local.provision import provision
from image_pipeline import aws, notify
from image_pipeline.settings import get_settings
from tests.fakes.rekognition import FakeRekognition

# Servers started by the tests talk to nothing but 127.0.0.1.
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"


@pytest.fixture(autouse=True)
def pillows_bomb_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """`decode` sets Pillow's process-wide pixel limit from its `max_pixels`; undo it after
    each test, so a test's small limit never refuses another test's images."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)


def _reset_caches() -> None:
    get_settings.cache_clear()
    aws.forget_clients()
    notify.topic_arn.cache_clear()


@pytest.fixture(scope="session")
def ministack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    logs = tmp_path_factory.mktemp("ministack")
    with processes.ministack(processes.free_port(), log_path=logs / "ministack.log") as url:
        yield url


@pytest.fixture(scope="session")
def aws_stack(ministack: str) -> Iterator[str]:
    """Point the pipeline at MiniStack, provision its resources, yield the topic ARN."""
    patch = pytest.MonkeyPatch()
    patch.setenv("IMAGE_PIPELINE_AWS_ENDPOINT_URL", ministack)
    patch.setenv("AWS_ACCESS_KEY_ID", "test")
    patch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    patch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    patch.delenv("IMAGE_PIPELINE_AWS_CREDENTIALS_BLOCK", raising=False)
    _reset_caches()
    try:
        yield provision()
    finally:
        patch.undo()
        _reset_caches()


@pytest.fixture
def configure(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """Override settings for one test: configure(labels="off", thumbnail_sizes="50x50")."""

    def apply(**overrides: object) -> None:
        for name, value in overrides.items():
            monkeypatch.setenv(f"IMAGE_PIPELINE_{name.upper()}", str(value))
        _reset_caches()

    yield apply
    monkeypatch.undo()
    _reset_caches()


@pytest.fixture
def operator_key(configure: Callable[..., None]) -> str:
    """A fresh operator key, configured for this test (the API reads it per request)."""
    key = f"operator-{uuid.uuid4().hex}"
    configure(operator_api_key=key)
    return key


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[None]:
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def fake_rekognition(aws_stack: str, ministack: str) -> Iterator[FakeRekognition]:
    """A stand-in Rekognition on a free port that reads S3 objects from MiniStack."""
    fake = FakeRekognition(s3_endpoint_url=ministack).start()
    try:
        yield fake
    finally:
        fake.stop()
