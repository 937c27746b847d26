"""Progress of a long flow run: a progress artifact kept up to date, and log lines saying how
many images are done and how many are left.

Plain code, not a task: it only talks to the Prefect server, from inside a flow or task run.
The artifact and the log are updated when the whole percentage moves (and at the end), so a
run of thousands of images makes at most about a hundred updates.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from prefect import get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact


@dataclass
class Progress:
    """`done` of `total` images of `subject`; the artifact `artifact_id` shows the percentage."""

    subject: str
    total: int
    artifact_id: UUID
    done: int = 0
    reported: int = 0  # the whole percentage last shown

    @classmethod
    def start(cls, key: str, subject: str, total: int) -> Progress:
        """A progress artifact (key `{key}-progress`) at 0, or at 100 with nothing to do."""
        progress = cls(subject, total, UUID(int=0))
        progress.artifact_id = create_progress_artifact(
            progress.percent, key=f"{key}-progress", description=progress.line()
        )
        progress.reported = int(progress.percent)
        get_run_logger().info(progress.line())
        return progress

    @property
    def percent(self) -> float:
        return 100.0 if self.total == 0 else min(100.0, 100.0 * self.done / self.total)

    def line(self) -> str:
        left = max(0, self.total - self.done)
        return f"{self.subject}: {self.done} of {self.total} images done, {left} left."

    def advance(self, count: int = 1) -> None:
        """`count` more images are done."""
        self.reach(self.done + count)

    def reach(self, done: int) -> None:
        """`done` images are done (a retried task reports the same numbers again, not more);
        shown when the whole percentage moved, and at the end."""
        if done <= self.done:
            return
        self.done = min(done, self.total)
        if int(self.percent) == self.reported and self.done < self.total:
            return
        self.reported = int(self.percent)
        update_progress_artifact(self.artifact_id, self.percent, description=self.line())
        get_run_logger().info(self.line())
