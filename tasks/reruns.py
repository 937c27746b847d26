"""The tasks of rerun-failed-images: which FAILED images have a run in the way, starting
one process-image run per remaining image, and publishing what was done."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.deployments import run_deployment
from pydantic import BaseModel, Field

from tasks.runs import (
    PREFECT_API_RETRIES,
    PROCESS_IMAGE_DEPLOYMENT,
    RunRef,
    runs_by_idempotency_key,
    unfinished_runs,
)
from tasks.settings import get_settings

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


# --- Tasks ----------------------------------------------------------------------------------


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
        rerun_before = runs_by_idempotency_key(
            client, {image.idempotency_key: image.key for image in images}
        )
        unfinished = unfinished_runs(client, {image.key for image in images})
    in_the_way: dict[str, tuple[Action, RunRef]] = {
        key: ("skipped: rerun before", run) for key, run in rerun_before.items()
    }
    # An unfinished run says more than "rerun before" (and may be that very rerun).
    in_the_way |= {key: ("skipped: already running", run) for key, run in unfinished.items()}
    return in_the_way


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
