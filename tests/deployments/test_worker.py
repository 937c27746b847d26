"""The warm process worker: runs forked from its forkserver, crashes still handled."""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlparse

import anyio
import pytest
from prefect import get_client
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.objects import FlowRun
from prefect.exceptions import ObjectNotFound
from prefect.plugins import load_prefect_collections
from prefect.settings import get_current_settings
from prefect.states import Cancelling
from prefect.utilities.dispatch import lookup_type
from prefect.workers.base import BaseWorker

from deployments import forkserver_warmup, worker
from deployments.local import stack
from deployments.local.processes import REPO
from deployments.worker import WarmProcessWorker

pytestmark = pytest.mark.usefixtures("prefect_server")

FLOWS = "tests/deployments/warm_flows.py"


def test_prefect_finds_the_worker_type_through_the_collection_entry_point() -> None:
    load_prefect_collections()
    assert lookup_type(BaseWorker, "warm-process") is WarmProcessWorker


async def _deploy(flow_name: str, job_env: dict[str, str]) -> tuple[str, str]:
    pool = f"warm-{uuid.uuid4().hex[:8]}"
    async with get_client() as client:
        await client.create_work_pool(
            WorkPoolCreate(
                name=pool,
                type=WarmProcessWorker.type,
                base_job_template=WarmProcessWorker.get_default_base_job_template(),
            )
        )
        flow_id = await client.create_flow_from_name(flow_name.replace("_", "-"))
        deployment_id = await client.create_deployment(
            flow_id=flow_id,
            name="warm",
            entrypoint=f"{FLOWS}:{flow_name}",
            work_pool_name=pool,
            job_variables={"env": job_env, "working_dir": str(REPO)},
            pull_steps=[
                {"prefect.deployments.steps.set_working_directory": {"directory": str(REPO)}}
            ],
        )
    return pool, str(deployment_id)


async def _run_on_warm_worker(
    flow_name: str, report: Path, job_env: dict[str, str], *, poll: bool = True
) -> FlowRun:
    """Run the flow on a warm worker; without `poll`, the worker only picks up runs when
    the server's events say one is scheduled."""
    pool, deployment_id = await _deploy(flow_name, job_env)
    async with get_client() as client, WarmProcessWorker(work_pool_name=pool) as worker:
        run = await client.create_flow_run_from_deployment(
            deployment_id, parameters={"report": str(report)}
        )
        return await _until_final(client, worker if poll else None, run, report)


async def _until(
    condition: Callable[[], Awaitable[bool]],
    worker: WarmProcessWorker | None,
    waiting_for: Callable[[], str],
) -> None:
    """Wait until `condition` holds (at most 120 s), polling `worker` meanwhile if given."""
    deadline = time.monotonic() + 120
    while not await condition():
        assert time.monotonic() < deadline, waiting_for()
        if worker is not None:
            await worker.get_and_submit_flow_runs()
        await anyio.sleep(0.2)


async def _until_final(
    client: PrefectClient, worker: WarmProcessWorker | None, run: FlowRun, report: Path | None
) -> FlowRun:
    """The run once final (and its report written); `worker` is polled meanwhile if given."""

    async def final() -> bool:
        nonlocal run
        run = await client.read_flow_run(run.id)
        return bool(run.state and run.state.is_final() and (report is None or report.exists()))

    await _until(final, worker, lambda: f"the run is still {run.state}")
    return run


async def _cancel_while_running(report: Path) -> tuple[FlowRun, int]:
    """A run cancelled while its process runs; the run once final, and that process's pid."""
    pool, deployment_id = await _deploy("wait_to_be_cancelled", {})
    async with get_client() as client, WarmProcessWorker(work_pool_name=pool) as worker:
        run = await client.create_flow_run_from_deployment(
            deployment_id, parameters={"report": str(report)}
        )

        async def started() -> bool:
            return report.exists()

        await _until(started, worker, lambda: "the run never started")
        await client.set_flow_run_state(run.id, Cancelling(), force=True)
        return await _until_final(client, None, run, None), json.loads(report.read_text())["pid"]


def test_a_run_is_forked_from_the_forkserver_with_its_jobs_environment(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    run = anyio.run(_run_on_warm_worker, "where_am_i", report, {"WARM_WORKER_JOB_ENV": "set"})

    assert run.state.is_completed(), run.state
    seen = json.loads(report.read_text())
    assert "multiprocessing.forkserver" in seen["parent_command"]
    assert seen["pid"] != os.getpid()
    assert seen["job_env"] == "set"
    assert seen["cwd"] == str(REPO)
    # Prefect's API clients share the TLS context the forkserver built (deployments.shared_tls).
    assert seen["tls_contexts"] == {
        "clients_share": True,
        "built_before_the_fork": True,
        "others_fresh": True,
    }
    # Pydantic's lazily built models were built once, in the forkserver (forkserver_warmup).
    assert seen["models_left_lazy"] == []
    assert seen["models_completed_in_parent"]
    assert seen["aws_models_parsed"]


def test_a_scheduled_run_is_picked_up_on_its_event_without_a_poll(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    run = anyio.run(functools.partial(_run_on_warm_worker, "where_am_i", report, {}, poll=False))

    assert run.state.is_completed(), run.state


def test_a_run_cancelled_while_running_ends_cancelled_and_its_process_is_gone(
    tmp_path: Path,
) -> None:
    report = tmp_path / "report.json"
    run, pid = anyio.run(_cancel_while_running, report)

    assert run.state.is_cancelled(), run.state
    assert not Path(f"/proc/{pid}").exists()


def test_a_prefect_setting_of_the_job_reaches_its_run(tmp_path: Path) -> None:
    """Runs keep the settings the forkserver read only when nothing changes them."""
    report = tmp_path / "report.json"
    run = anyio.run(_run_on_warm_worker, "where_am_i", report, {"PREFECT_LOGGING_LEVEL": "DEBUG"})

    assert run.state.is_completed(), run.state
    assert json.loads(report.read_text())["logging_level"] == "DEBUG"


def test_the_forkserver_settings_hold_only_for_the_same_settings() -> None:
    forkserver_env = {**os.environ, "PREFECT__FLOW_RUN_ID": "any"}
    exported = dict(forkserver_warmup.FORKSERVER_SETTINGS)
    assert worker._same_settings(forkserver_env, exported)
    assert not worker._same_settings({**forkserver_env, "PREFECT_LOGGING_LEVEL": "x"}, exported)
    assert not worker._same_settings(forkserver_env, {**exported, "PREFECT_API_URL": "x"})


def test_a_run_that_kills_its_process_ends_crashed_and_its_hook_runs_in_the_worker(
    tmp_path: Path,
) -> None:
    report = tmp_path / "report.json"
    run = anyio.run(_run_on_warm_worker, "die", report, {})

    assert run.state.is_crashed(), run.state
    assert json.loads(report.read_text())["hook_pid"] == os.getpid()


def test_the_local_stack_replaces_a_pool_of_another_type(tmp_path: Path) -> None:
    """A state folder from before the warm worker has a `process` pool, whose type
    cannot change: the stack deletes it so that it is made again as `warm-process`."""
    port = urlparse(get_current_settings().api.url).port
    assert port is not None
    local = stack.Stack(
        ports=dataclasses.replace(stack.Ports.free(), prefect=port),
        state=tmp_path,
        api_key="unused",
        operator_key="unused",
    )

    async def pool_type() -> str | None:
        async with get_client() as client:
            try:
                return (await client.read_work_pool(stack.WORK_POOL)).type
            except ObjectNotFound:
                return None

    async def create(kind: str) -> None:
        async with get_client() as client:
            await client.create_work_pool(WorkPoolCreate(name=stack.WORK_POOL, type=kind))

    anyio.run(create, "process")
    stack._drop_pool_of_another_type(local)
    assert anyio.run(pool_type) is None

    anyio.run(create, stack.WORKER_TYPE)
    stack._drop_pool_of_another_type(local)
    assert anyio.run(pool_type) == stack.WORKER_TYPE
