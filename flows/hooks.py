"""Flow-state hooks: the item and the SNS notice follow the run's final state.

They run after the flow's last retry (`on_completion`, `on_failure`) or, for a crash,
in the worker after the flow-run process died (`on_crashed`). A hook that raises is
logged by Prefect; nothing here hides an error.
"""

from __future__ import annotations

import logging
from typing import Any

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, TaskRunFilter
from prefect.client.schemas.objects import FlowRun
from prefect.states import State

from tasks import notify, record
from tasks.errors import ImageRejected, describe_error

logger = logging.getLogger("image_pipeline.hooks")


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
    _record_and_notify(flow_run, "Crashed", state.message or "The flow-run process crashed.")


def _record_and_notify(
    flow_run: FlowRun, error_type: str, message: str, *, validation_failed: bool = False
) -> None:
    params = flow_run.parameters
    step = failed_step(flow_run)
    record.mark_failed(
        params["bucket"],
        params["key"],
        params.get("etag"),
        str(flow_run.id),
        error_type=error_type,
        error_message=message,
        failed_step=step,
        validation_failed=validation_failed,
    )
    notify.publish_failure(
        params["bucket"],
        params["key"],
        error_type=error_type,
        error_message=message,
        failed_step=step,
    )


def failed_step(flow_run: FlowRun) -> str:
    """The task that failed (or was running when the process died), from Prefect's records."""
    with get_client(sync_client=True) as client:
        task_runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run.id])),
            task_run_filter=TaskRunFilter(),
        )
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
