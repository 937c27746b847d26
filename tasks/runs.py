"""process-image flow runs on the Prefect server: which are unfinished, starting new ones.

Shared by the flows and the API, so that both agree on what "a run in the way" is (a run
of any origin that is scheduled, pending, running, paused or cancelling).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import httpx
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterIdempotencyKey,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.client.schemas.sorting import FlowRunSort
from pydantic import BaseModel

PROCESS_IMAGE_FLOW = "process-image"
PROCESS_IMAGE_DEPLOYMENT = "process-image/process-image"
# Every state in which a run may still touch the image: not yet final.
UNFINISHED = [
    StateType.SCHEDULED,
    StateType.PENDING,
    StateType.RUNNING,
    StateType.PAUSED,
    StateType.CANCELLING,
]
_API_PAGE = 200  # the Prefect server's default and largest page
_PROCESS_IMAGE_RUNS = FlowFilter(name=FlowFilterName(any_=[PROCESS_IMAGE_FLOW]))


class RunRef(BaseModel):
    """A process-image flow run, as the summary names it."""

    id: str
    name: str
    state: str

    @classmethod
    def of(cls, run: FlowRun) -> RunRef:
        return cls(id=str(run.id), name=run.name, state=run.state.name if run.state else "?")


# --- Retry policy of tasks that call the Prefect API ---------------------------------------


def prefect_unavailable(task: Any, task_run: Any, state: Any) -> bool:
    """Retry when the Prefect API could not be reached or failed, not when it refused."""
    exc = state.result(raise_on_failure=False)
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code >= 500
    return isinstance(exc, httpx.TransportError)


PREFECT_API_RETRIES: dict[str, Any] = dict(
    retries=3,
    retry_delay_seconds=[2, 5, 10],
    retry_jitter_factor=0.5,
    retry_condition_fn=prefect_unavailable,
)


# --- Queries --------------------------------------------------------------------------------


def _chunks(values: Sequence[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(values), size):
        yield list(values[start : start + size])


def runs_by_idempotency_key(
    client: SyncPrefectClient, image_of: dict[str, str]
) -> dict[str, RunRef]:
    """process-image runs with these idempotency keys, by the image key each one maps to
    (`image_of`: idempotency key -> image key), whatever their state."""
    found = {}
    for chunk in _chunks(list(image_of), _API_PAGE):
        for run in client.read_flow_runs(
            flow_filter=_PROCESS_IMAGE_RUNS,
            flow_run_filter=FlowRunFilter(idempotency_key=FlowRunFilterIdempotencyKey(any_=chunk)),
            limit=_API_PAGE,
        ):
            found[image_of[run.idempotency_key]] = RunRef.of(run)
    return found


def unfinished_runs(client: SyncPrefectClient, keys: set[str]) -> dict[str, RunRef]:
    """Unfinished runs of these keys, matched by their `key` parameter: a run the trigger
    started keeps a generated name until it starts, so its name would not tell."""
    unfinished = FlowRunFilter(
        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=UNFINISHED))
    )
    found = {}
    offset = 0
    while True:
        page = client.read_flow_runs(
            flow_filter=_PROCESS_IMAGE_RUNS,
            flow_run_filter=unfinished,
            sort=FlowRunSort.ID_DESC,
            limit=_API_PAGE,
            offset=offset,
        )
        for run in page:
            key = (run.parameters or {}).get("key", run.name)
            if key in keys:
                found[key] = RunRef.of(run)
        if len(page) < _API_PAGE:
            return found
        offset += len(page)
