"""rerun-failed-images: start process-image again for the images whose processing failed.

Finds the FAILED items through the table's status index (by key prefix, error type and
failure time), leaves out every image that a process-image run is already handling or
that an earlier rerun already started for the same failure, and starts one process-image
run per remaining image, for the object as it is now. With `dry_run` it only reports.
What it did is the flow's result, its log and a table artifact.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import httpx
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import SyncPrefectClient, get_client
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
from prefect.deployments import run_deployment
from pydantic import BaseModel, Field

from tasks.catalog import find_images
from tasks.record import FAILED
from tasks.settings import get_settings

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

Action = Literal["started", "would start", "skipped: already running", "skipped: rerun before"]


class Failure(BaseModel):
    """A FAILED image, as much of its item as a rerun needs."""

    key: str
    bucket: str
    failed_at: int = Field(description="The item's updated_at: when the failure was recorded.")
    error_type: str | None = None
    failed_step: str | None = None

    @property
    def idempotency_key(self) -> str:
        """One rerun per recorded failure, however often this flow is run or retried."""
        return f"rerun-{self.key}-{self.failed_at}"

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Failure:
        return cls(
            key=item["ImageKey"],
            bucket=item.get("s3_bucket_original") or get_settings().uploads_bucket,
            failed_at=item["updated_at"],
            error_type=item.get("error_type"),
            failed_step=item.get("failed_step"),
        )


class RunRef(BaseModel):
    """A process-image flow run, as the summary names it."""

    id: str
    name: str
    state: str

    @classmethod
    def of(cls, run: FlowRun) -> RunRef:
        return cls(id=str(run.id), name=run.name, state=run.state.name if run.state else "?")


class Outcome(BaseModel):
    image: Failure
    action: Action
    flow_run: RunRef | None = None


class RerunSummary(BaseModel):
    dry_run: bool
    found: int = Field(description="FAILED images that match, at most `limit`.")
    more_match: bool = Field(description="More FAILED images match than `limit`.")
    outcomes: list[Outcome]

    def keys_with(self, action: Action) -> list[str]:
        return [o.image.key for o in self.outcomes if o.action == action]

    @property
    def started(self) -> list[str]:
        return self.keys_with("started")

    @property
    def would_start(self) -> list[str]:
        return self.keys_with("would start")

    @property
    def skipped_running(self) -> list[str]:
        return self.keys_with("skipped: already running")

    @property
    def skipped_rerun_before(self) -> list[str]:
        return self.keys_with("skipped: rerun before")

    def headline(self) -> str:
        counts = {
            "started": len(self.started),
            "would start (dry run)": len(self.would_start),
            "skipped, already running": len(self.skipped_running),
            "skipped, rerun before": len(self.skipped_rerun_before),
        }
        text = f"{self.found} failed image(s) found" + "".join(
            f"; {count} {what}" for what, count in counts.items() if count
        )
        return text + (" (limit reached: more match)" if self.more_match else "") + "."

    def report(self, max_lines: int = 50) -> str:
        """The headline, then one line per image (the artifact has them all)."""
        lines = [self.headline()]
        for o in self.outcomes[:max_lines]:
            run = (
                f" {o.flow_run.name!r} ({o.flow_run.id}, {o.flow_run.state})" if o.flow_run else ""
            )
            lines.append(f"{o.action}: {o.image.key} [{o.image.error_type}]{run}")
        if len(self.outcomes) > max_lines:
            lines.append(f"... and {len(self.outcomes) - max_lines} more: see the artifact.")
        return "\n".join(lines)


# --- Tasks --------------------------------------------------------------------------------


def _prefect_unavailable(task: Any, task_run: Any, state: Any) -> bool:
    """Retry when the Prefect API could not be reached or failed, not when it refused."""
    exc = state.result(raise_on_failure=False)
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code >= 500
    return isinstance(exc, httpx.TransportError)


PREFECT_API_RETRIES: dict[str, Any] = dict(
    retries=3,
    retry_delay_seconds=[2, 5, 10],
    retry_jitter_factor=0.5,
    retry_condition_fn=_prefect_unavailable,
)


def _chunks(values: Sequence[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(values), size):
        yield list(values[start : start + size])


@task(
    name="find-runs-in-the-way", **PREFECT_API_RETRIES, cache_policy=NO_CACHE, persist_result=False
)
def find_runs_in_the_way(images: list[Failure]) -> dict[str, tuple[Action, RunRef]]:
    """For each image that must not be started now: why, and the process-image run that says so.

    An unfinished run (scheduled, pending, running, paused, cancelling) of process-image
    with that key is in the way, whether a trigger, a person or a rerun started it; so is
    a run that an earlier rerun started for the same failure, whatever its state.
    """
    with get_client(sync_client=True) as client:
        rerun_before = _runs_by_idempotency_key(client, images)
        unfinished = _unfinished_runs(client, {image.key for image in images})
    in_the_way: dict[str, tuple[Action, RunRef]] = {
        key: ("skipped: rerun before", run) for key, run in rerun_before.items()
    }
    # An unfinished run says more than "rerun before" (and may be that very rerun).
    in_the_way |= {key: ("skipped: already running", run) for key, run in unfinished.items()}
    return in_the_way


_PROCESS_IMAGE_RUNS = FlowFilter(name=FlowFilterName(any_=[PROCESS_IMAGE_FLOW]))


def _runs_by_idempotency_key(client: SyncPrefectClient, images: list[Failure]) -> dict[str, RunRef]:
    """Runs an earlier rerun started for these very failures, by image key. Starting one
    again would only return that run: the server keeps one run per idempotency key."""
    image_of = {image.idempotency_key: image.key for image in images}
    found = {}
    for chunk in _chunks(list(image_of), _API_PAGE):
        for run in client.read_flow_runs(
            flow_filter=_PROCESS_IMAGE_RUNS,
            flow_run_filter=FlowRunFilter(idempotency_key=FlowRunFilterIdempotencyKey(any_=chunk)),
            limit=_API_PAGE,
        ):
            found[image_of[run.idempotency_key]] = RunRef.of(run)
    return found


def _unfinished_runs(client: SyncPrefectClient, keys: set[str]) -> dict[str, RunRef]:
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


@task(name="start-reruns", **PREFECT_API_RETRIES, cache_policy=NO_CACHE, persist_result=False)
def start_reruns(images: list[Failure]) -> list[RunRef]:
    """One process-image run per image, for the object as it is now (`etag` None).

    Each run's idempotency key names the failure it reruns, so a retry of this task (or
    of the flow) finds the runs it already created instead of making new ones.
    """
    logger = get_run_logger()
    started = []
    for image in images:
        run = run_deployment(
            name=PROCESS_IMAGE_DEPLOYMENT,
            parameters={"bucket": image.bucket, "key": image.key, "etag": None},
            flow_run_name=image.key,
            tags=["rerun"],
            idempotency_key=image.idempotency_key,
            timeout=0,
            as_subflow=False,
        )
        logger.info("Started %s for %s (failed with %s).", run.id, image.key, image.error_type)
        started.append(RunRef.of(run))
    return started


@task(name="publish-summary", cache_policy=NO_CACHE, persist_result=False)
def publish_summary(summary: RerunSummary) -> None:
    rows = [
        {
            "key": o.image.key,
            "error type": o.image.error_type or "",
            "failed step": o.image.failed_step or "",
            "failed at": datetime.fromtimestamp(o.image.failed_at, UTC).isoformat(),
            "action": o.action,
            "flow run": f"{o.flow_run.name} ({o.flow_run.id})" if o.flow_run else "",
            "flow run state": o.flow_run.state if o.flow_run else "",
        }
        for o in summary.outcomes
    ]
    title = "Dry run: nothing was started. " if summary.dry_run else ""
    create_table_artifact(
        table=rows, key="rerun-failed-images", description=title + summary.headline()
    )


# --- The flow -------------------------------------------------------------------------------


def epoch_seconds(moment: datetime | None) -> int | None:
    """Whole epoch seconds, as the item's updated_at; a time without zone is UTC."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return math.floor(moment.timestamp())


def summarize(
    images: list[Failure],
    in_the_way: dict[str, tuple[Action, RunRef]],
    started: list[RunRef] | None,
    *,
    more_match: bool,
) -> RerunSummary:
    """What happened to each image; `started` is None in a dry run."""
    runs = iter(started or [])
    outcomes = []
    for image in images:
        if image.key in in_the_way:
            action, run = in_the_way[image.key]
            outcomes.append(Outcome(image=image, action=action, flow_run=run))
        elif started is None:
            outcomes.append(Outcome(image=image, action="would start"))
        else:
            outcomes.append(Outcome(image=image, action="started", flow_run=next(runs)))
    return RerunSummary(
        dry_run=started is None, found=len(images), more_match=more_match, outcomes=outcomes
    )


@flow(name="rerun-failed-images", persist_result=False)
def rerun_failed_images(
    key_prefix: str | None = None,
    error_type: str | None = None,
    failed_after: datetime | None = None,
    failed_before: datetime | None = None,
    dry_run: bool = False,
    limit: Annotated[int, Field(ge=1)] = 1000,
) -> RerunSummary:
    """Start process-image again for FAILED images, newest failure first, at most `limit`.

    `key_prefix` and `error_type` narrow the images (e.g. `uploads/2024/`, `CorruptImage`);
    `failed_after` and `failed_before` bound when the failure was recorded, to the second,
    both inclusive (a time without zone is UTC). An image that a process-image run is
    already handling, or that an earlier rerun already started for the same failure, is
    skipped and reported. `dry_run` reports what would be started and starts nothing.
    """
    found = find_images(
        FAILED,
        limit=limit,
        key_prefix=key_prefix,
        error_type=error_type,
        updated_after=epoch_seconds(failed_after),
        updated_before=epoch_seconds(failed_before),
    )
    images = [Failure.from_item(item) for item in found.items]
    in_the_way = find_runs_in_the_way(images) if images else {}
    to_start = [image for image in images if image.key not in in_the_way]
    started = None if dry_run else (start_reruns(to_start) if to_start else [])
    summary = summarize(images, in_the_way, started, more_match=found.next_cursor is not None)
    publish_summary(summary)
    get_run_logger().info(summary.report())
    return summary
