"""The steps of reconcile-stuck-images: find the images a run left without an outcome, ask
the Prefect server about their runs, and record FAILED with the reason where a run is over."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun

from image_pipeline import catalog, notify, records
from image_pipeline.outcomes import Outcome, RunRef
from image_pipeline.runs import crashed_runs, failed_step, runs_by_id
from image_pipeline.stuck import Lost, Stuck, Verdict, verdict_on
from tasks.policies import PREFECT_API_RETRIES, TRANSIENT_RETRIES

MARKED, WOULD_MARK = "marked FAILED", "would mark FAILED"
LEFT_ALONE, CHANGED_SINCE = "left alone: run not finished", "skipped: changed since"


@task(name="find-stuck-images", **TRANSIENT_RETRIES, cache_policy=NO_CACHE, persist_result=False)
def find_stuck_images(updated_before: int, key_prefix: str | None, limit: int) -> list[Stuck]:
    """PROCESSING items not updated since `updated_before` (epoch seconds)."""
    found = catalog.find_images(
        records.PROCESSING, limit=limit, key_prefix=key_prefix, updated_before=updated_before
    )
    return [Stuck.from_item(item) for item in found.items]


@task(name="judge-runs", **PREFECT_API_RETRIES, cache_policy=NO_CACHE, persist_result=False)
def judge_runs(images: list[Stuck]) -> dict[str, Verdict]:
    """A verdict per flow run id the images name, from the Prefect server."""
    with get_client(sync_client=True) as client:
        runs = runs_by_id(client, [image.flow_run_id for image in images])
    verdicts = {
        image.flow_run_id: verdict_on(image.flow_run_id, runs.get(image.flow_run_id))
        for image in images
    }
    for run_id, verdict in verdicts.items():
        if verdict.finished and run_id in runs:
            _log_end(runs[run_id])
    return verdicts


@task(name="settle-stuck-image", **TRANSIENT_RETRIES, cache_policy=NO_CACHE, persist_result=False)
def settle_stuck(image: Stuck, verdict: Verdict, dry_run: bool) -> Outcome:
    """FAILED with the verdict's reason, only over the PROCESSING state that was found, then
    the failure notice; nothing while the run may still touch the image, or in a dry run."""
    run = RunRef(id=image.flow_run_id, name=image.flow_run_id, state=verdict.run_state)
    if not verdict.finished:
        return Outcome(key=image.key, action=LEFT_ALONE, flow_run=run)
    assert verdict.error_type and verdict.message
    outcome = Outcome(
        key=image.key,
        action=WOULD_MARK,
        error_type=verdict.error_type,
        failed_step=verdict.failed_step,
        flow_run=run,
    )
    if dry_run:
        return outcome
    item = records.mark_failed(
        image.bucket,
        image.key,
        None,  # the item keeps the ETag of the version that was being processed
        image.flow_run_id,
        error_type=verdict.error_type,
        error_message=verdict.message,
        failed_step=verdict.failed_step,
        stuck_since=image.updated_at,
    )
    if item is None:  # a newer claim or a result since
        return outcome.model_copy(update={"action": CHANGED_SINCE})
    _publish_failure(item, outcome, verdict.message)
    return outcome.model_copy(update={"action": MARKED})


@task(name="find-lost-images", **PREFECT_API_RETRIES, cache_policy=NO_CACHE, persist_result=False)
def find_lost_images(since: datetime, key_prefix: str | None, limit: int) -> list[Lost]:
    """Images under `key_prefix` with no item, whose process-image run crashed after `since`."""
    with get_client(sync_client=True) as client:
        runs = crashed_runs(client, since, limit)
    lost = [image for run in runs for image in Lost.from_run(run)]
    return [
        image
        for image in lost
        if image.key.startswith(key_prefix or "") and records.read_item(image.key) is None
    ]


@task(name="settle-lost-image", **TRANSIENT_RETRIES, cache_policy=NO_CACHE, persist_result=False)
def settle_lost(image: Lost, dry_run: bool) -> Outcome | None:
    """FAILED for an image that has no item; None when it has one by now."""
    with get_client(sync_client=True) as prefect:
        run = prefect.read_flow_run(uuid.UUID(image.flow_run_id))
    _log_end(run)
    outcome = Outcome(
        key=image.key,
        action=WOULD_MARK,
        error_type="Crashed",
        failed_step=failed_step(run, settle_seconds=0),
        flow_run=RunRef.of(run),
    )
    if dry_run:
        return outcome
    item = records.mark_failed(
        image.bucket,
        image.key,
        image.etag,
        image.flow_run_id,
        error_type="Crashed",
        error_message=image.message,
        failed_step=outcome.failed_step or "unknown",
        only_if_unrecorded=True,
    )
    if item is None:
        return None
    _publish_failure(item, outcome, image.message)
    return outcome.model_copy(update={"action": MARKED})


def _log_end(run: FlowRun) -> None:
    """The run's final state message, which the item and the notice leave out, for operators."""
    state = run.state
    get_run_logger().info(
        "Flow run %r (%s) ended %s: %s",
        run.name,
        run.id,
        state.name if state else "unknown",
        (state.message if state else None) or "(no message)",
    )


def _publish_failure(item: dict[str, Any], outcome: Outcome, message: str) -> None:
    try:
        notify.publish_failure(
            item["s3_bucket_original"],
            outcome.key,
            error_type=outcome.error_type or "",
            error_message=message,
            failed_step=outcome.failed_step or "unknown",
        )
    except Exception:
        # The record is written; a retry of the task would find nothing left to mark.
        get_run_logger().exception("The failure notice for %r could not be published.", outcome.key)
