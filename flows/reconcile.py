"""reconcile-stuck-images: record FAILED for images whose run ended without recording it.

An image stays PROCESSING for ever when its run ends without an outcome on the item: when
DynamoDB is unavailable for the rest of the run, the failure hook cannot write FAILED
either; when the flow-run process dies and no worker runs its crash hook, nothing does.
This flow finds PROCESSING items not updated for `older_than_minutes`, asks the Prefect
server about the run each one names, and when that run is over (or unknown to the server)
marks the image FAILED with the reason and publishes the failure notice. A run that may
still touch the image (scheduled, pending, running, paused, retrying) is left alone, and
the conditional write never replaces anything but the very PROCESSING state it found.

An image has no item at all when its run crashed before recording anything (say the
worker could not start it because the Prefect server answered 503 under load). The flow
also finds the process-image runs that crashed in the last `lost_within_hours` and records
FAILED for each one's image that has no item.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterEndTime,
    FlowRunFilterId,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun, StateType
from pydantic import BaseModel

from flows.hooks import failed_step
from tasks import notify, record
from tasks.catalog import find_images
from tasks.retry import TRANSIENT_RETRIES
from tasks.runs import PREFECT_API_RETRIES

_API_PAGE = 200  # the Prefect server's largest page

# error_type recorded for each final state of the run that left the image PROCESSING.
ERROR_TYPES = {
    StateType.CRASHED: "Crashed",
    StateType.FAILED: "FlowFailed",
    StateType.CANCELLED: "Cancelled",
    StateType.COMPLETED: "Orphaned",
}
ORPHANED = "Orphaned"  # also: a run the server does not know

Action = Literal[
    "marked FAILED", "would mark FAILED", "left alone: run not finished", "skipped: changed since"
]


class Stuck(BaseModel):
    """A PROCESSING item, as much of it as reconciling needs."""

    key: str
    bucket: str
    flow_run_id: str
    updated_at: int

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Stuck:
        return cls(
            key=item["ImageKey"],
            bucket=item.get("s3_bucket_original", ""),
            flow_run_id=str(item.get("flow_run_id", "")),
            updated_at=item["updated_at"],
        )


class Lost(BaseModel):
    """A process-image run that crashed, and the image it was for."""

    key: str
    bucket: str
    etag: str | None
    flow_run_id: str
    message: str

    @classmethod
    def from_run(cls, run: FlowRun) -> Lost:
        reason = (run.state.message if run.state else None) or "The flow run crashed."
        return cls(
            key=run.parameters["key"],
            bucket=run.parameters["bucket"],
            etag=run.parameters.get("etag"),
            flow_run_id=str(run.id),
            message=f"{reason} (Flow run {run.name!r} ({run.id}) crashed before it recorded "
            "anything for the image; recorded by reconcile-stuck-images.)",
        )


class Verdict(BaseModel):
    """What the Prefect server says about the run an item names."""

    run_state: str  # the state's name, or "unknown"
    finished: bool
    error_type: str | None = None
    message: str | None = None
    failed_step: str = "unknown"


class Outcome(BaseModel):
    key: str
    flow_run_id: str
    run_state: str
    action: Action
    error_type: str | None = None


class ReconcileSummary(BaseModel):
    dry_run: bool
    outcomes: list[Outcome]

    def keys_with(self, action: Action) -> list[str]:
        return [o.key for o in self.outcomes if o.action == action]

    def headline(self) -> str:
        counts: dict[str, int] = {}
        for outcome in self.outcomes:
            counts[outcome.action] = counts.get(outcome.action, 0) + 1
        found = f"{len(self.outcomes)} stuck or unrecorded image(s) found"
        return found + "".join(f"; {n} {action}" for action, n in counts.items()) + "."


# --- Tasks --------------------------------------------------------------------------------


def verdict_on(flow_run_id: str, run: FlowRun | None) -> Verdict:
    """The item's fate from its run: FAILED with the reason when the run is over, else wait."""
    if run is None:
        return Verdict(
            run_state="unknown",
            finished=True,
            error_type=ORPHANED,
            message=f"Flow run {flow_run_id or '(none)'} is unknown to the Prefect server "
            "and left the image PROCESSING; recorded by reconcile-stuck-images.",
        )
    state = run.state
    if state is None or state.type not in ERROR_TYPES:
        return Verdict(run_state=state.name if state else "unknown", finished=False)
    detail = state.message or f"The flow run ended {state.name}."
    if state.type == StateType.COMPLETED:
        detail = "The flow run completed without recording a result for the image."
    return Verdict(
        run_state=state.name,
        finished=True,
        error_type=ERROR_TYPES[state.type],
        message=f"{detail} (Flow run {run.name!r} ({run.id}) ended {state.name} and left "
        "the image PROCESSING; recorded by reconcile-stuck-images.)",
        failed_step=failed_step(run, settle_seconds=0),  # long over: as recorded
    )


def _as_uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


@task(name="judge-runs", **PREFECT_API_RETRIES, cache_policy=NO_CACHE, persist_result=False)
def judge_runs(images: list[Stuck]) -> dict[str, Verdict]:
    """A verdict per flow run id the images name, from the Prefect server."""
    ids = sorted({run_id for image in images if (run_id := _as_uuid(image.flow_run_id))}, key=str)
    runs: dict[str, FlowRun] = {}
    with get_client(sync_client=True) as client:
        for start in range(0, len(ids), _API_PAGE):
            chunk = ids[start : start + _API_PAGE]
            for run in client.read_flow_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=chunk)), limit=_API_PAGE
            ):
                runs[str(run.id)] = run
    return {
        image.flow_run_id: verdict_on(image.flow_run_id, runs.get(image.flow_run_id))
        for image in images
    }


@task(name="find-crashed-runs", **PREFECT_API_RETRIES, cache_policy=NO_CACHE, persist_result=False)
def find_crashed_runs(since: datetime, key_prefix: str | None, limit: int) -> list[Lost]:
    """process-image runs that crashed after `since`, for images under `key_prefix`."""
    runs: list[FlowRun] = []
    with get_client(sync_client=True) as client:
        while len(runs) < limit:
            page = client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=["process-image"])),
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.CRASHED])),
                    end_time=FlowRunFilterEndTime(after_=since),
                ),
                limit=min(_API_PAGE, limit - len(runs)),
                offset=len(runs),
            )
            runs += page
            if len(page) < _API_PAGE:
                break
    lost = [Lost.from_run(run) for run in runs if "key" in run.parameters]
    return [image for image in lost if image.key.startswith(key_prefix or "")]


@task(name="mark-lost-failed", **TRANSIENT_RETRIES, cache_policy=NO_CACHE, persist_result=False)
def mark_lost_failed(image: Lost) -> bool:
    """FAILED for an image that has no item; False when it has one (its run, or another,
    recorded it)."""
    if record.read_item(image.key) is not None:
        return False
    with get_client(sync_client=True) as prefect:
        step = failed_step(prefect.read_flow_run(uuid.UUID(image.flow_run_id)), settle_seconds=0)
    item = record.mark_failed(
        image.bucket,
        image.key,
        image.etag,
        image.flow_run_id,
        error_type="Crashed",
        error_message=image.message,
        failed_step=step,
        only_if_unrecorded=True,
    )
    if item is None:
        return False
    _publish_failure(item, image.key, "Crashed", image.message, step)
    return True


@task(name="mark-failed", **TRANSIENT_RETRIES, cache_policy=NO_CACHE, persist_result=False)
def mark_stuck_failed(image: Stuck, verdict: Verdict) -> bool:
    """FAILED with the verdict's reason, only over the PROCESSING state that was found; then
    the failure notice. False when the item changed since (a newer claim or a result)."""
    assert verdict.error_type and verdict.message
    item = record.mark_failed(
        image.bucket,
        image.key,
        None,  # the item keeps the ETag of the version that was being processed
        image.flow_run_id,
        error_type=verdict.error_type,
        error_message=verdict.message,
        failed_step=verdict.failed_step,
        stuck_since=image.updated_at,
    )
    if item is None:
        return False
    _publish_failure(item, image.key, verdict.error_type, verdict.message, verdict.failed_step)
    return True


def _publish_failure(
    item: dict[str, Any], key: str, error_type: str, message: str, failed_step: str
) -> None:
    try:
        notify.publish_failure(
            item["s3_bucket_original"],
            key,
            error_type=error_type,
            error_message=message,
            failed_step=failed_step,
        )
    except Exception:
        # The record is written; a retry of the task would find nothing left to mark.
        get_run_logger().exception("The failure notice for %r could not be published.", key)


@task(name="publish-summary", cache_policy=NO_CACHE, persist_result=False)
def publish_summary(summary: ReconcileSummary) -> None:
    rows = [o.model_dump() for o in summary.outcomes] or [{"key": "-", "action": "none stuck"}]
    title = "Dry run: nothing was changed. " if summary.dry_run else ""
    create_table_artifact(
        table=rows, key="reconcile-stuck-images", description=title + summary.headline()
    )


# --- The flow -------------------------------------------------------------------------------


@flow(name="reconcile-stuck-images", persist_result=False)
def reconcile_stuck_images(
    older_than_minutes: float = 10,
    key_prefix: str | None = None,
    dry_run: bool = False,
    limit: int = 1000,
    lost_within_hours: float = 24,
) -> ReconcileSummary:
    """Mark FAILED the PROCESSING images not updated for `older_than_minutes` whose flow run
    is over (crashed, failed, cancelled, completed) or unknown to the server, and the
    images without an item whose run crashed in the last `lost_within_hours`; publish
    their failure notices. `key_prefix` narrows the images; `dry_run` only reports."""
    cutoff = int(time.time() - older_than_minutes * 60)
    found = find_images(
        record.PROCESSING, limit=limit, key_prefix=key_prefix, updated_before=cutoff
    )
    images = [Stuck.from_item(item) for item in found.items]
    verdicts = judge_runs(images) if images else {}
    outcomes = []
    for image in images:
        verdict = verdicts[image.flow_run_id]
        if not verdict.finished:
            action: Action = "left alone: run not finished"
        elif dry_run:
            action = "would mark FAILED"
        elif mark_stuck_failed(image, verdict):
            action = "marked FAILED"
        else:
            action = "skipped: changed since"
        outcomes.append(
            Outcome(
                key=image.key,
                flow_run_id=image.flow_run_id,
                run_state=verdict.run_state,
                action=action,
                error_type=verdict.error_type if verdict.finished else None,
            )
        )
    since = datetime.now(UTC) - timedelta(hours=lost_within_hours)
    for lost in find_crashed_runs(since, key_prefix, limit):
        if dry_run:
            if record.read_item(lost.key) is None:
                outcomes.append(_lost_outcome(lost, "would mark FAILED"))
        elif mark_lost_failed(lost):
            outcomes.append(_lost_outcome(lost, "marked FAILED"))
    summary = ReconcileSummary(dry_run=dry_run, outcomes=outcomes)
    publish_summary(summary)
    logger = get_run_logger()
    logger.info(summary.headline())
    for o in outcomes:
        logger.info("%s: %r (flow run %s, %s)", o.action, o.key, o.flow_run_id, o.run_state)
    return summary


def _lost_outcome(image: Lost, action: Action) -> Outcome:
    return Outcome(
        key=image.key,
        flow_run_id=image.flow_run_id,
        run_state="Crashed",
        action=action,
        error_type="Crashed",
    )
