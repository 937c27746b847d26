"""Start process-image runs through the Prefect API, never two at once for the same image."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from uuid import UUID

import httpx
from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound
from prefect.settings import get_current_settings

from api.prefect_events import TIMEOUT, PrefectUnavailable
from image_pipeline.models import SourceObject
from image_pipeline.outcomes import RunRef

# The rerun flow's own notion of "a run in the way", so that the API and the flow agree on
# it (a run of any origin that is scheduled, pending, running, paused or cancelling).
from image_pipeline.runs import PROCESS_IMAGE_DEPLOYMENT, unfinished_runs


class RunInTheWay(Exception):
    """A process-image run is already handling the image."""

    def __init__(self, run: RunRef) -> None:
        super().__init__(f"flow run {run.id} ({run.state})")
        self.run = run


def start_process_image(source: SourceObject, *, force: bool = False) -> RunRef:
    """Create a process-image run for this version of the object, unless one is unfinished.
    With `force`, the run redoes the version even when it is already COMPLETED.

    Raises `RunInTheWay` with that run, or `PrefectUnavailable`.
    """
    if not get_current_settings().api.url:
        # Without it, get_client() would start a temporary Prefect server in this process.
        raise PrefectUnavailable("PREFECT_API_URL is not set")
    # Checking and creating are two requests: one request at a time per image closes the
    # gap in this process (another API process could still slip between them).
    with _one_at_a_time(source.key):
        try:
            with get_client(httpx_settings={"timeout": TIMEOUT}, sync_client=True) as client:
                if run := unfinished_runs(client, {source.key}).get(source.key):
                    raise RunInTheWay(run)
                deployment = client.read_deployment_by_name(PROCESS_IMAGE_DEPLOYMENT)
                parameters = {"bucket": source.bucket, "key": source.key, "etag": source.etag}
                created = client.create_flow_run_from_deployment(
                    deployment.id,
                    parameters=parameters | ({"force": True} if force else {}),
                    name=source.key,
                    tags=["reprocess"],
                )
        except ObjectNotFound as exc:
            message = f"deployment {PROCESS_IMAGE_DEPLOYMENT!r} is not on the Prefect server"
            raise PrefectUnavailable(message) from exc
        except httpx.HTTPError as exc:
            raise PrefectUnavailable(f"{type(exc).__name__}: {exc}") from exc
    return RunRef.of(created)


def ui_url(flow_run_id: str | UUID) -> str | None:
    """The run's page in the Prefect UI (PREFECT_UI_URL, else derived from PREFECT_API_URL)."""
    base = get_current_settings().ui_url
    return f"{base.rstrip('/')}/runs/flow-run/{flow_run_id}" if base else None


_locks: weakref.WeakValueDictionary[str, threading.Lock] = weakref.WeakValueDictionary()
_locks_guard = threading.Lock()


@contextmanager
def _one_at_a_time(key: str) -> Iterator[None]:
    # A lock per key, dropped once no request holds or waits for it.
    with _locks_guard:
        lock = _locks.get(key)
        if lock is None:
            lock = _locks[key] = threading.Lock()
    with lock:
        yield
