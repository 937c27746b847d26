"""Rerunning FAILED images: which failure each rerun is for, and what a rerun flow did."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from image_pipeline.outcomes import Outcome, RunRef, Summary
from image_pipeline.settings import get_settings

STARTED, WOULD_START = "started", "would start"
SKIPPED_RUNNING, SKIPPED_RERUN_BEFORE = "skipped: already running", "skipped: rerun before"


class Failure(BaseModel):
    """A FAILED image, as much of its item as a rerun needs."""

    key: str
    bucket: str
    failed_at: int = Field(description="The item's updated_at: when the failure was recorded.")
    error_type: str | None = None
    failed_step: str | None = None

    @property
    def idempotency_key(self) -> str:
        """One rerun per recorded failure, however often the rerun flow is run or retried."""
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

    def outcome(self, action: str, run: RunRef | None = None) -> Outcome:
        return Outcome(
            key=self.key,
            action=action,
            error_type=self.error_type,
            failed_step=self.failed_step,
            flow_run=run,
        )


class RerunSummary(Summary):
    found: int = Field(description="FAILED images that match, at most `limit`.")
    more_match: bool = Field(description="More FAILED images match than `limit`.")

    @property
    def started(self) -> list[str]:
        return self.keys_with(STARTED)

    @property
    def would_start(self) -> list[str]:
        return self.keys_with(WOULD_START)

    @property
    def skipped_running(self) -> list[str]:
        return self.keys_with(SKIPPED_RUNNING)

    @property
    def skipped_rerun_before(self) -> list[str]:
        return self.keys_with(SKIPPED_RERUN_BEFORE)

    def headline(self) -> str:
        more = " (limit reached: more match)" if self.more_match else ""
        return super().headline().removesuffix(".") + more + "."


def summarize(
    images: list[Failure],
    in_the_way: dict[str, tuple[str, RunRef]],
    started: list[RunRef] | None,
    *,
    subject: str,
    more_match: bool,
) -> RerunSummary:
    """What happened to each image; `started` is None in a dry run."""
    runs = iter(started or [])
    outcomes = []
    for image in images:
        if image.key in in_the_way:
            outcomes.append(image.outcome(*in_the_way[image.key]))
        elif started is None:
            outcomes.append(image.outcome(WOULD_START))
        else:
            outcomes.append(image.outcome(STARTED, next(runs)))
    return RerunSummary(
        subject=subject,
        dry_run=started is None,
        found=len(images),
        more_match=more_match,
        outcomes=outcomes,
    )
