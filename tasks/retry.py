"""The retry policy of tasks that talk to AWS: retry transient errors, never permanent ones."""

from __future__ import annotations

from typing import Any

from tasks.aws import is_transient


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
