"""Flows the warm worker's tests deploy: each reports where and how it ran."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from prefect import flow


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
            }
        )
    )


def _record_crash(flow, flow_run, state) -> None:
    Path(flow_run.parameters["report"]).write_text(json.dumps({"hook_pid": os.getpid()}))


@flow(on_crashed=[_record_crash])
def die(report: str) -> None:
    os.kill(os.getpid(), signal.SIGKILL)
