"""Flow-state hooks: the item and the SNS notice follow the run's final state.

They run after the flow's last retry (`on_completion`, `on_failure`) or, for a crash,
in the worker after the flow-run process died (`on_crashed`). A hook that raises is
logged by Prefect; nothing here hides an error.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, TaskRunFilter
from prefect.client.schemas.objects import FlowRun
from prefect.states import State

from tasks import notify, record
from tasks.errors import ImageRejected, describe_error
from tasks.source import normalize_etag

logger = logging.getLogger("image_pipeline.hooks")

# How long a failure hook waits for Prefect to record the failed task's state (see failed_step).
SETTLE_SECONDS = 5.0


def notify_success(flow: Any, flow_run: FlowRun, state: State) -> None:
    """Publish the success notice, once: only the run that produced the item announces it."""
    item = record.read_item(flow_run.parameters["key"])
    if (
        item
        and item.get("flow_run_id") == str(flow_run.id)
        and item.get("overall_processing_status") == record.COMPLETED
    ):
        notify.publish_success(item)


async def record_failure(flow: Any, flow_run: FlowRun, state: State) -> None:
    # The flow is async, so its state's result is read the async way.
    error = await state.aresult(raise_on_failure=False)
    if isinstance(error, BaseException):
        error_type, message = describe_error(error)
    else:
        error_type, message = "FlowFailed", state.message or "The flow run failed."
    _record_and_notify(
        flow_run, error_type, message, validation_failed=isinstance(error, ImageRejected)
    )


def record_crash(flow: Any, flow_run: FlowRun, state: State) -> None:
    # The dead process sends no more task states: the records are as settled as they get.
    _record_and_notify(
        flow_run, "Crashed", state.message or "The flow-run process crashed.", settle_seconds=0
    )


def _record_and_notify(
    flow_run: FlowRun,
    error_type: str,
    message: str,
    *,
    validation_failed: bool = False,
    settle_seconds: float = SETTLE_SECONDS,
) -> None:
    params = flow_run.parameters
    step = failed_step(flow_run, settle_seconds=settle_seconds)
    recorded = record.mark_failed(
        params["bucket"],
        params["key"],
        params.get("etag"),
        str(flow_run.id),
        error_type=error_type,
        error_message=message,
        failed_step=step,
        validation_failed=validation_failed,
    )
    if recorded is None and _another_run_has_it(params["key"], params.get("etag"), flow_run):
        logger.info(
            "%s failed (%s) but another run holds or completed this version of %r: "
            "its result is the image's, so this failure is not announced.",
            flow_run.name,
            error_type,
            params["key"],
        )
        return
    notify.publish_failure(
        params["bucket"],
        params["key"],
        error_type=error_type,
        error_message=message,
        failed_step=step,
    )


def _another_run_has_it(key: str, etag: str | None, flow_run: FlowRun) -> bool:
    """Whether another run claimed (or completed) the very version this run failed on."""
    item = record.read_item(key)
    return bool(
        item
        and etag
        and item.get("etag") == normalize_etag(etag)
        and item.get("flow_run_id") != str(flow_run.id)
        and item.get("overall_processing_status") in (record.PROCESSING, record.COMPLETED)
    )


def failed_step(flow_run: FlowRun, *, settle_seconds: float = SETTLE_SECONDS) -> str:
    """The task that failed (or was running when the process died), from Prefect's records.

    Task-run states reach the server as events, recorded asynchronously, so right after a
    failure the failed task may still show as running, or not exist yet: wait (at most
    `settle_seconds`) until a task run has failed and none is still running. After a crash the
    records never settle (the task that was running stays so), and that task is the answer.
    """
    deadline = time.monotonic() + settle_seconds
    while True:
        with get_client(sync_client=True) as client:
            task_runs = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run.id])),
                task_run_filter=TaskRunFilter(),
            )
        states = [run.state for run in task_runs if run.state]
        settled = any(state.is_failed() or state.is_crashed() for state in states) and all(
            state.is_final() for state in states
        )
        if settled or time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    unfinished = [
        run
        for run in task_runs
        if run.state and (run.state.is_failed() or run.state.is_crashed() or run.state.is_running())
    ]
    if not unfinished:
        return "flow"
    latest = max(unfinished, key=lambda run: run.expected_start_time or run.created)
    # Task run names are "<task name>-<suffix>".
    return latest.name.rsplit("-", 1)[0]
