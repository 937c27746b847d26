"""Flows the warm worker's tests deploy: each reports where and how it ran."""

from __future__ import annotations

import json
import os
import signal
import ssl
from pathlib import Path

from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import DeploymentCreate, WorkPoolCreate
from prefect.events.schemas.automations import Automation
from prefect.settings import get_current_settings

from deployments import forkserver_warmup, shared_tls


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


def _context(client: object) -> ssl.SSLContext:
    # httpx keeps the context given to the client on its connection pool.
    return client._client._transport._pool._ssl_context  # type: ignore[attr-defined]


def _record_crash(flow, flow_run, state) -> None:
    Path(flow_run.parameters["report"]).write_text(json.dumps({"hook_pid": os.getpid()}))


@flow(on_crashed=[_record_crash])
def die(report: str) -> None:
    os.kill(os.getpid(), signal.SIGKILL)
