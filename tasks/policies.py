"""Retry policies of the steps: retry what may pass (AWS or Prefect unavailable), never the rest."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import httpx
from prefect.results import ResultRecord
from prefect.states import Failed, State

from image_pipeline.aws import is_transient
from image_pipeline.errors import ImageRejected

P = ParamSpec("P")
R = TypeVar("R")


def rejections_as_states(body: Callable[P, R]) -> Callable[P, R | State]:
    """A step's body that returns its `ImageRejected` as a Failed state instead of raising it.

    A bad upload is an expected outcome, not a crash: Prefect logs a raised exception with
    its traceback, while a returned Failed state ends the task run with its message, one
    line (`NotAnImage: The file is not an image ...`). The rejection rides along as the
    state's data, so the retry condition still sees it (and declines) and the caller gets it
    back (`raise_rejection`). Every other error is raised as before, traceback and all.
    """

    @functools.wraps(body)
    def step(*args: P.args, **kwargs: P.kwargs) -> R | State:
        try:
            return body(*args, **kwargs)
        except ImageRejected as rejection:
            return Failed(message=rejection.summary, data=rejection)

    return step


def raise_rejection(result: R | State) -> R:
    """The step's product; the rejection it returned as a Failed state raised again."""
    if isinstance(result, State):
        # Read from the state's data, not `State.result()`, which in an async flow (where
        # process-image calls this) answers with a coroutine.
        data = result.data
        error = data.result if isinstance(data, ResultRecord) else data
        raise error if isinstance(error, BaseException) else RuntimeError(result.message)
    return result


def retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect `retry_condition_fn`: retry only when the failure is a transient AWS error.

    Prefect calls it as `fn(task, task_run, state)` with the Failed state, whose result
    is the exception.
    """
    exc = state.result(raise_on_failure=False)
    return isinstance(exc, BaseException) and is_transient(exc)


TRANSIENT_RETRIES: dict[str, Any] = dict(
    retries=4,
    retry_delay_seconds=[1, 2, 4, 8],
    retry_jitter_factor=0.5,
    retry_condition_fn=retry_transient,
)


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
