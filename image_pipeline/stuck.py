"""Images whose run ended without recording an outcome, and what the Prefect server says.

An image stays PROCESSING for ever when its run ends without an outcome on the item: when
DynamoDB is unavailable for the rest of the run, the failure hook cannot write FAILED
either; when the flow-run process dies and no worker runs its crash hook, nothing does.
An image has no item at all when its run crashed before recording anything (say the
worker could not start it because the Prefect server answered 503 under load).

The reason recorded names the run (its name and id) and how it ended, never its state's
message, which may carry an exception's text: that stays in Prefect, and the reconciling
run logs it.
"""

from __future__ import annotations

from typing import Any

from prefect.client.schemas.objects import FlowRun, StateType
from pydantic import BaseModel

from image_pipeline.errors import describe_run_end
from image_pipeline.runs import failed_step, uploads_of

# error_type recorded for each final state of the run that left the image PROCESSING.
ERROR_TYPES = {
    StateType.CRASHED: "Crashed",
    StateType.FAILED: "FlowFailed",
    StateType.CANCELLED: "Cancelled",
    StateType.COMPLETED: "Orphaned",
}
ORPHANED = "Orphaned"  # also: a run the server does not know
RECORDED_BY = "recorded by reconcile-stuck-images"


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
    def from_run(cls, run: FlowRun) -> list[Lost]:
        """One per image of the run (a process-images run carries several)."""
        message = (
            f"{describe_run_end('Crashed')} (Flow run {run.name!r} ({run.id}) crashed "
            f"before it recorded anything for the image; {RECORDED_BY}.)"
        )
        return [
            cls(
                key=upload.key,
                bucket=upload.bucket,
                etag=upload.etag,
                flow_run_id=str(run.id),
                message=message,
            )
            for upload in uploads_of(run)
        ]


class Verdict(BaseModel):
    """What the Prefect server says about the run an item names."""

    run_state: str  # the state's name, or "unknown"
    finished: bool
    error_type: str | None = None
    message: str | None = None
    failed_step: str = "unknown"


def verdict_on(flow_run_id: str, run: FlowRun | None) -> Verdict:
    """The item's fate from its run: FAILED with the reason when the run is over, else wait."""
    if run is None:
        return Verdict(
            run_state="unknown",
            finished=True,
            error_type=ORPHANED,
            message=f"Flow run {flow_run_id or '(none)'} is unknown to the Prefect server "
            f"and left the image PROCESSING; {RECORDED_BY}.",
        )
    state = run.state
    if state is None or state.type not in ERROR_TYPES:
        return Verdict(run_state=state.name if state else "unknown", finished=False)
    error_type = ERROR_TYPES[state.type]
    return Verdict(
        run_state=state.name,
        finished=True,
        error_type=error_type,
        message=f"{describe_run_end(error_type)} (Flow run {run.name!r} ({run.id}) ended "
        f"{state.name} and left the image PROCESSING; {RECORDED_BY}.)",
        failed_step=failed_step(run, settle_seconds=0),  # long over: as recorded
    )
