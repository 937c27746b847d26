"""process-image flow runs on the Prefect server: one filter, one pager, the queries on them.

Shared by the flows, the tasks and the API, so that all agree on what "a run in the way"
is (a run of any origin that is scheduled, pending, running, paused or cancelling).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterEndTime,
    FlowRunFilterId,
    FlowRunFilterIdempotencyKey,
    FlowRunFilterState,
    FlowRunFilterStateType,
    TaskRunFilter,
)
from prefect.client.schemas.objects import FlowRun, StateType, TaskRun
from prefect.client.schemas.sorting import FlowRunSort

from image_pipeline.models import Upload
from image_pipeline.outcomes import RunRef

PROCESS_IMAGE_FLOW = "process-image"
PROCESS_IMAGE_DEPLOYMENT = "process-image/process-image"
# A batch of uploads in one run (what the webhook's events start); each image a task run.
PROCESS_IMAGES_FLOW = "process-images"
PROCESS_IMAGES_DEPLOYMENT = "process-images/process-images"
# Every state in which a run may still touch the image: not yet final.
UNFINISHED = [
    StateType.SCHEDULED,
    StateType.PENDING,
    StateType.RUNNING,
    StateType.PAUSED,
    StateType.CANCELLING,
]
API_PAGE = 200  # the Prefect server's default and largest page
IMAGE_RUNS = FlowFilter(name=FlowFilterName(any_=[PROCESS_IMAGE_FLOW, PROCESS_IMAGES_FLOW]))

# How long a failure hook waits for Prefect to record the failed task's state (see failed_step).
SETTLE_SECONDS = 5.0


def uploads_of(run: FlowRun) -> list[Upload]:
    """The images a process-image or process-images run is about."""
    return uploads_in(run.parameters or {})


def uploads_in(parameters: Mapping[str, Any]) -> list[Upload]:
    """The images named by the parameters of a process-image or process-images run."""
    if "images" in parameters:
        return [Upload.model_validate(image) for image in parameters["images"]]
    if "key" in parameters:
        return [Upload.model_validate(parameters)]
    return []


def process_image_runs(
    client: SyncPrefectClient, flow_run_filter: FlowRunFilter, *, limit: int | None = None
) -> Iterator[FlowRun]:
    """process-image and process-images runs that match, newest first, a page at a time, at
    most `limit`."""
    offset = 0
    while limit is None or offset < limit:
        size = API_PAGE if limit is None else min(API_PAGE, limit - offset)
        page = client.read_flow_runs(
            flow_filter=IMAGE_RUNS,
            flow_run_filter=flow_run_filter,
            sort=FlowRunSort.ID_DESC,
            limit=size,
            offset=offset,
        )
        yield from page
        if len(page) < size:
            return
        offset += len(page)


def _chunks(values: Sequence[Any], size: int = API_PAGE) -> Iterator[list[Any]]:
    for start in range(0, len(values), size):
        yield list(values[start : start + size])


def runs_by_idempotency_key(
    client: SyncPrefectClient, image_of: dict[str, str]
) -> dict[str, RunRef]:
    """process-image runs with these idempotency keys, by the image key each one maps to
    (`image_of`: idempotency key -> image key), whatever their state."""
    found = {}
    for chunk in _chunks(list(image_of)):
        wanted = FlowRunFilter(idempotency_key=FlowRunFilterIdempotencyKey(any_=chunk))
        for run in process_image_runs(client, wanted):
            found[image_of[run.idempotency_key]] = RunRef.of(run)
    return found


def unfinished_runs(client: SyncPrefectClient, keys: set[str]) -> dict[str, RunRef]:
    """Unfinished runs of these keys, matched by their `key` parameter: a run the trigger
    started keeps a generated name until it starts, so its name would not tell."""
    unfinished = FlowRunFilter(
        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=UNFINISHED))
    )
    found = {}
    for run in process_image_runs(client, unfinished):
        for upload in uploads_of(run):
            if upload.key in keys:
                found[upload.key] = RunRef.of(run)
    return found


def runs_by_id(client: SyncPrefectClient, ids: Iterable[str]) -> dict[str, FlowRun]:
    """The runs with these ids that the server knows; ids that are not UUIDs are unknown."""
    uuids = sorted({run_id for text in ids if (run_id := _as_uuid(text))}, key=str)
    found = {}
    for chunk in _chunks(uuids):
        wanted = FlowRunFilter(id=FlowRunFilterId(any_=chunk))
        for run in process_image_runs(client, wanted):
            found[str(run.id)] = run
    return found


def crashed_runs(client: SyncPrefectClient, since: datetime, limit: int) -> list[FlowRun]:
    """process-image runs that crashed after `since`, newest first, at most `limit`."""
    crashed = FlowRunFilter(
        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.CRASHED])),
        end_time=FlowRunFilterEndTime(after_=since),
    )
    return list(process_image_runs(client, crashed, limit=limit))


def _as_uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


def failed_step(
    flow_run: FlowRun, *, settle_seconds: float = SETTLE_SECONDS, steps: Collection[str] = ()
) -> str:
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
        if run.state
        and (run.state.is_failed() or run.state.is_crashed() or run.state.is_running())
        # Only steps, when named: a batch's image task (named by its key) runs around them.
        and (not steps or _task_name(run) in steps)
    ]
    if not unfinished:
        return "flow"
    latest = max(unfinished, key=lambda run: run.expected_start_time or run.created)
    return _task_name(latest)


def _task_name(task_run: TaskRun) -> str:
    # Task run names are "<task name>-<suffix>".
    return task_run.name.rsplit("-", 1)[0]
