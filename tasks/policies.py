"""Retry policies of the steps: retry what may pass (AWS or Prefect unavailable), never the rest."""

from __future__ import annotations

from typing import Any

import httpx

from image_pipeline.aws import is_transient


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
