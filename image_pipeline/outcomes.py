"""What a bulk flow (backfill, rerun-failed-images, reconcile-stuck-images) did, image by image."""

from __future__ import annotations

from collections import Counter
from typing import Any

from pydantic import BaseModel

from image_pipeline.models import Moderation


class RunRef(BaseModel):
    """A process-image flow run, as a summary names it."""

    id: str
    name: str
    state: str

    @classmethod
    def of(cls, run: Any) -> RunRef:
        """From a Prefect `FlowRun`."""
        return cls(id=str(run.id), name=run.name, state=run.state.name if run.state else "?")


class Outcome(BaseModel):
    key: str
    action: str  # "COMPLETED", "started", "marked FAILED", "skipped: already running", ...
    error_type: str | None = None
    reason: str | None = None  # the failure's sentence, as the item has it
    failed_step: str | None = None
    thumbnail: str | None = None  # a processed image's smallest thumbnail (s3:// URI)
    flow_run: RunRef | None = None
    quarantined: str | None = None  # the moderation status that held its thumbnails back

    def with_moderation(self, moderation: Moderation | None) -> Outcome:
        held = moderation is not None and moderation.quarantined
        return self.model_copy(update={"quarantined": moderation.status if held else None})

    def row(self) -> dict[str, str]:
        """One row of the flow's table artifact."""
        run = self.flow_run
        return {
            "key": self.key,
            "action": self.action,
            "error type": self.error_type or "",
            "reason": self.reason or "",
            "failed step": self.failed_step or "",
            "flow run": f"{run.name} ({run.id})" if run else "",
            "flow run state": run.state if run else "",
            "quarantined": self.quarantined or "",
        }


class Summary(BaseModel):
    subject: str  # what the flow looked at, e.g. "s3://bucket/uploads/"
    dry_run: bool = False
    outcomes: list[Outcome]

    def keys_with(self, action: str) -> list[str]:
        return [o.key for o in self.outcomes if o.action == action]

    def failure_line(self, action: str) -> str:
        """One line for the run's Failed state: the failed image's type and reason, or for
        several, how many of each type."""
        failed = [o for o in self.outcomes if o.action == action]
        head = f"{len(failed)} of {len(self.outcomes)} image(s) failed"
        if len(failed) == 1:
            [one] = failed
            return f"{head}: {one.key}: {one.error_type}: {one.reason}"
        kinds = Counter(o.error_type for o in failed)
        return f"{head}: " + ", ".join(f"{kind} ({n})" for kind, n in kinds.items())

    def counts(self) -> dict[str, int]:
        return dict(Counter(o.action for o in self.outcomes))

    def headline(self) -> str:
        found = f"{self.subject}: {len(self.outcomes)} image(s)"
        done = "".join(f"; {n} {action}" for action, n in self.counts().items())
        dry = "Dry run: nothing was changed. " if self.dry_run else ""
        return f"{dry}{found}{done}."

    def report(self, max_lines: int = 50) -> str:
        """The headline, then one line per image (the artifact has them all)."""
        lines = [self.headline()]
        for o in self.outcomes[:max_lines]:
            run = o.flow_run
            run_text = f" {run.name!r} ({run.id}, {run.state})" if run else ""
            error = f" [{o.error_type}]" if o.error_type else ""
            lines.append(f"{o.action}: {o.key}{error}{run_text}")
        if len(self.outcomes) > max_lines:
            lines.append(f"... and {len(self.outcomes) - max_lines} more: see the artifact.")
        return "\n".join(lines)
