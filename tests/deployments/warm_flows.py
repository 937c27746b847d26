"""Flows the warm worker's tests deploy: each reports where and how it ran."""

from __future__ import annotations

import json
import os
import signal
import ssl
import threading
from pathlib import Path
from unittest import mock

from botocore.loaders import JSONFileLoader
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import DeploymentCreate, WorkPoolCreate
from prefect.events.schemas.automations import Automation
from prefect.settings import get_current_settings

from deployments import forkserver_warmup, shared_tls
from image_pipeline import aws


def _parent_command() -> str:
    return Path(f"/proc/{os.getppid()}/cmdline").read_bytes().replace(b"\0", b" ").decode()


@flow
def where_am_i(report: str) -> None:
    Path(report).write_text(
        json.dumps(
            {
                "pid": os.getpid(),
                "parent_command": _parent_command(),
                "job_env": os.environ.get("WARM_WORKER_JOB_ENV"),
                "cwd": os.getcwd(),
                "tls_contexts": _tls_contexts(),
                "logging_level": get_current_settings().logging.level,
                "models_left_lazy": _models_left_lazy(),
                "models_completed_in_parent": os.getppid() == forkserver_warmup.WARMED_UP_IN,
                "aws_models_parsed": _aws_models_parsed(),
            }
        )
    )


def _tls_contexts() -> dict[str, bool]:
    """Whether Prefect's clients share one verified TLS context, built before the fork."""
    built = shared_tls._verified_context.cache_info().misses
    with get_client(sync_client=True) as one, get_client(sync_client=True) as other:
        clients_share = _context(one) is _context(other)
    return {
        "clients_share": clients_share,
        "built_before_the_fork": shared_tls._verified_context.cache_info().misses == built,
        "others_fresh": ssl.create_default_context() is not ssl.create_default_context(),
    }


def _models_left_lazy() -> list[str]:
    """Which of some Prefect models that pydantic builds on first use, and that no run uses,
    are still unbuilt: none, when the forkserver completed them before the fork."""
    models = (Automation, DeploymentCreate, WorkPoolCreate)
    return [model.__qualname__ for model in models if not model.__pydantic_complete__]


def _aws_models_parsed() -> bool:
    """Whether AWS clients are built without reading a service model: the forkserver parsed
    them all."""
    session = aws.new_session(
        region_name="us-east-1", aws_access_key_id="id", aws_secret_access_key="secret"
    )
    with mock.patch.object(JSONFileLoader, "load_file", side_effect=AssertionError):
        try:
            for service in aws.SERVICES:
                session.client(service)
        except AssertionError:
            return False
    return True


def _context(client: object) -> ssl.SSLContext:
    # httpx keeps the context given to the client on its connection pool.
    return client._client._transport._pool._ssl_context  # type: ignore[attr-defined]


def _record_crash(flow, flow_run, state) -> None:
    Path(flow_run.parameters["report"]).write_text(json.dumps({"hook_pid": os.getpid()}))


@flow(on_crashed=[_record_crash])
def die(report: str) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


@flow
def wait_to_be_cancelled(report: str) -> None:
    Path(report).write_text(json.dumps({"pid": os.getpid()}))
    threading.Event().wait(120)  # the test cancels the run long before
