"""A process worker whose flow runs start warm.

Prefect's process worker starts every flow run as a new interpreter, which imports
Prefect, boto3 and Pillow again: about 1.5 s of a 2 MP image's 2.4 s from upload to
record. This worker forks each run instead from a forkserver that imported all of that
once. The forkserver is single-threaded, so the fork is safe where forking the worker
itself (threads, an event loop, open connections) is not (Prefect PR #16802).

Everything else is Prefect's process worker: the job configuration, the state proposals,
cancellation through the control channel, and the crash handling that runs the flow's
`on_crashed` hooks in the worker when a run's process dies. A run still has a process of
its own, so an image that kills its process takes down only its own run.

Two things make a run start sooner than Prefect's own process worker would start it, besides
the fork. The forkserver builds once what every run would otherwise build on first use
(`deployments.forkserver_warmup`). And the worker polls as soon as the server's event stream
says a run of its pool is scheduled, besides its regular poll.

The worker type is registered as a Prefect collection (`pyproject.toml`), so a work pool
of type `warm-process` and `prefect worker start --type warm-process` find it.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
import os
import runpy
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import anyio.abc
import httpx
from prefect.events.clients import get_events_subscriber
from prefect.events.filters import EventAnyResourceFilter, EventFilter, EventNameFilter
from prefect.flows import load_flow_from_flow_run
from prefect.runner._flow_run_executor import FlowRunExecutionResult, FlowRunExecutorContext
from prefect.runner._process_manager import ProcessHandle
from prefect.settings import get_current_settings
from prefect.utilities.processutils import sanitize_subprocess_env
from prefect.workers.process import ProcessJobConfiguration, ProcessWorker, ProcessWorkerResult

if TYPE_CHECKING:
    from prefect.client.schemas.objects import FlowRun
    from prefect.runner._control_channel import ControlChannel

# Imported once by the forkserver, shared by every run forked from it.
PRELOADED = [
    "deployments.shared_tls",
    "deployments.worker",  # what a run's process unpickles first: `_run_engine`
    "prefect.engine",
    "prefect.flow_engine",
    "prefect.task_engine",
    "prefect.deployments.steps",
    # What a run's first calls import otherwise: `Task.map` (graphviz), and the engine's
    # first async call (anyio's asyncio backend): about 20 ms of every run.
    "prefect.utilities.visualization",
    "anyio._backends._asyncio",
    "flows.process_images",
    "flows.process_image",
    "deployments.forkserver_warmup",  # last: it completes what the imports above defined
]

# What the server emits when a run of the pool can start: a new run, and a run scheduled
# again by a retry (the UI's Retry, or a crashed run's own retries).
RUN_SCHEDULED_EVENTS = ["prefect.flow-run.Scheduled", "prefect.flow-run.AwaitingRetry"]

_forkserver = multiprocessing.get_context("forkserver")
_forkserver.set_forkserver_preload(PRELOADED)


def _run_engine(environment: dict[str, str], working_dir: str, exported: dict[str, str]) -> None:
    """The forked child: become what `python -m prefect.engine` would have been.

    `environment` is the job's; `exported` is the part of it that is the worker's settings.
    """
    inherited = _same_settings(environment, exported) and Path.cwd() == Path(working_dir)
    os.chdir(working_dir)
    os.environ.clear()
    os.environ.update(environment)
    sys.argv = ["prefect.engine"]
    with nullcontext() if inherited else _settings_read_again():
        runpy.run_module("prefect.engine", run_name="__main__", alter_sys=True)


def _settings_environment(
    environment: Mapping[str, str], exported: Mapping[str, str]
) -> dict[str, str]:
    """The variables that are Prefect settings, besides the `exported` ones (`PREFECT__`
    variables name the run instead)."""
    return {
        name: value
        for name, value in environment.items()
        if name.startswith("PREFECT_") and not name.startswith("PREFECT__") and name not in exported
    }


def exported_settings() -> dict[str, str]:
    """The current Prefect settings that were set, as variables."""
    return get_current_settings().to_environment_variables(exclude_unset=True)


def _same_settings(environment: Mapping[str, str], exported: Mapping[str, str]) -> bool:
    """Whether the run's settings are those the forkserver read when it imported Prefect
    (and set up logging with). Then they hold as they are; otherwise they are read again
    from the run's environment, as a new interpreter would, at about 0.25 s of CPU. (Prefect
    also reads `.env` and `prefect.toml` in the working folder: the caller compares it.)"""
    from deployments.forkserver_warmup import FORKSERVER_SETTINGS  # imported: preloaded

    return exported == FORKSERVER_SETTINGS and _settings_environment(
        environment, exported
    ) == _settings_environment(os.environ, FORKSERVER_SETTINGS)


@contextmanager
def _settings_read_again() -> Iterator[None]:
    from prefect.context import SettingsContext, get_settings_context
    from prefect.logging.configuration import setup_logging
    from prefect.settings import Settings

    with SettingsContext(profile=get_settings_context().profile, settings=Settings()):
        setup_logging()
        yield


class ForkserverStarter:
    """Starts a flow run as a child of the forkserver, with the environment of the job."""

    def __init__(
        self,
        *,
        cwd: Path,
        env: dict[str, str | None],
        control_channel: ControlChannel | None,
    ) -> None:
        self._cwd = cwd
        self._env = env
        self._control_channel = control_channel

    async def start(
        self,
        flow_run: FlowRun,
        task_status: anyio.abc.TaskStatus[ProcessHandle] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        control_env = self._register(flow_run)
        exported = _worker_settings_environment()
        try:
            process = _forkserver.Process(
                target=_run_engine,
                args=(self._environment(flow_run, control_env, exported), str(self._cwd), exported),
                name=f"flow-run-{flow_run.id}",
            )
            await anyio.to_thread.run_sync(process.start)
        except BaseException:
            if control_env and self._control_channel is not None:
                self._control_channel.unregister(flow_run.id)
            raise
        task_status.started(ProcessHandle(process))
        await anyio.to_thread.run_sync(process.join)

    def _register(self, flow_run: FlowRun) -> dict[str, str]:
        if self._control_channel is None:
            return {}
        try:
            port, token = self._control_channel.register(flow_run.id)
        except RuntimeError:
            # No loopback listener: cancellation falls back to killing the process.
            return {}
        return {"PREFECT__CONTROL_PORT": str(port), "PREFECT__CONTROL_TOKEN": token}

    def _environment(
        self, flow_run: FlowRun, control_env: dict[str, str], exported: dict[str, str]
    ) -> dict[str, str]:
        # The same layering as Prefect's EngineCommandStarter.
        environment: dict[str, str | None] = {
            **os.environ,
            **self._env,
            **exported,
            "PREFECT__FLOW_RUN_ID": str(flow_run.id),
            "PREFECT__ENABLE_CANCELLATION_AND_CRASHED_HOOKS": "false",
            **control_env,
        }
        return {k: v for k, v in sanitize_subprocess_env(environment).items() if v is not None}


_exported: tuple[object, dict[str, str]] | None = None


def _worker_settings_environment() -> dict[str, str]:
    """The worker's settings as variables: serialised once per settings object, not per run
    (about 50 ms of CPU each time)."""
    global _exported
    settings = get_current_settings()
    if _exported is None or _exported[0] is not settings:
        _exported = (settings, exported_settings())
    return dict(_exported[1])


class WarmProcessJobConfiguration(ProcessJobConfiguration):
    """Prefect's process job configuration, its settings serialised once, not per run."""

    @classmethod
    def _base_environment(cls) -> dict[str, str]:
        return _worker_settings_environment()


class WarmProcessWorker(ProcessWorker):
    type = "warm-process"
    _description = (
        "Execute flow runs as processes forked from a warm forkserver: Prefect's process "
        "worker without a new interpreter per run."
    )
    _display_name = "Warm process"
    job_configuration = WarmProcessJobConfiguration
    _executors: FlowRunExecutorContext | None = None

    async def setup(self) -> None:
        self._waking = anyio.CancelScope()
        # One executor context for all runs, as Prefect's Runner keeps one, where Prefect's
        # process worker enters one per run: a client, a control channel and a cancellation
        # observer (a websocket and its backfill query) each time, about 0.12 s of a run's
        # start. Entered first, so that it closes last, after the runs in flight.
        self._executors = await FlowRunExecutorContext().__aenter__()
        try:
            await super().setup()
        except BaseException:
            await self._executors.__aexit__(None, None, None)
            self._executors = None
            raise
        # Start the forkserver now, not on the first run, so no run pays its imports.
        await anyio.to_thread.run_sync(multiprocessing.forkserver.ensure_running)
        if self._runs_task_group is not None:
            self._runs_task_group.start_soon(self._poll_when_runs_are_scheduled)

    async def teardown(self, *exc_info: object) -> None:
        self._waking.cancel()
        try:
            await super().teardown(*exc_info)  # waits for the runs in flight
        finally:
            if self._executors is not None:
                await self._executors.__aexit__(*exc_info)
                self._executors = None

    async def _poll_when_runs_are_scheduled(self) -> None:
        """Poll as soon as the server schedules a run of this pool, not at the next poll
        (half the poll interval on average, plus its jitter: about 0.3 s of an upload's
        latency). The regular poll goes on beside it, and is all there is while the
        server's event stream cannot be reached."""
        if self._work_pool is None:
            self._logger.warning("Work pool unknown at start: picking up runs by polling only.")
            return
        events = get_events_subscriber(
            filter=EventFilter(
                event=EventNameFilter(name=RUN_SCHEDULED_EVENTS),
                any_resource=EventAnyResourceFilter(id=[f"prefect.work-pool.{self._work_pool.id}"]),
            ),
            reconnect_on_clean_close=True,
        )
        with self._waking:
            try:
                async with events:
                    async for _ in events:
                        await self._poll_now()
            except Exception:
                self._logger.warning(
                    "Lost the server's event stream: picking up runs by polling only.",
                    exc_info=True,
                )

    async def _poll_now(self) -> None:
        try:
            await self.get_and_submit_flow_runs()
        except httpx.HTTPError:
            self._logger.warning(
                "Polling on a scheduled run failed; the next poll retries.", exc_info=True
            )

    async def run(
        self,
        flow_run: FlowRun,
        configuration: ProcessJobConfiguration,
        task_status: anyio.abc.TaskStatus[int] | None = None,
    ) -> ProcessWorkerResult:
        if task_status is None:
            task_status = anyio.TASK_STATUS_IGNORED
        working_dir = configuration.working_dir
        execution: FlowRunExecutionResult | None = None
        executors = self._executors
        if executors is None:
            raise RuntimeError("The worker runs flows once set up: use it as a context manager.")
        with nullcontext(working_dir) if working_dir else tempfile.TemporaryDirectory() as cwd:
            starter = ForkserverStarter(
                cwd=Path(cwd).resolve(),
                env=configuration.env,
                control_channel=executors.control_channel,
            )
            executor = executors.create_executor(
                flow_run, starter, resolve_flow=load_flow_from_flow_run, propose_submitting=False
            )

            async def execute(
                *, task_status: anyio.abc.TaskStatus[ProcessHandle] = anyio.TASK_STATUS_IGNORED
            ) -> None:
                nonlocal execution
                execution = await executor.submit(task_status=task_status)

            async with anyio.create_task_group() as task_group:
                handle = await task_group.start(execute)
                task_status.started(handle.pid)
        if execution is None or execution.status_code is None:
            raise RuntimeError("Failed to start flow run process.")
        return ProcessWorkerResult(
            status_code=execution.status_code, identifier=str(execution.handle.pid)
        )
