"""The pipeline's steps, declared once, in order: the original state machine's states.

`process-image` walks them as tasks (each with its own task run, retries and logs in the
Prefect UI); the backfill walks them as plain functions inside a batch task. The tests read
the same list. A step added here appears everywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from image_pipeline.errors import ImageRejected
from image_pipeline.models import ImageWork
from image_pipeline.settings import get_settings
from tasks.labels import detect_labels
from tasks.metadata import extract_metadata
from tasks.moderation import moderate
from tasks.policies import raise_rejection
from tasks.record import claim_record, store_record
from tasks.thumbnails import make_thumbnails
from tasks.validate import validate


@dataclass(frozen=True)
class Step:
    task: Any  # a Prefect task taking and returning ImageWork
    # What the item records besides FAILED when this step rejects the image itself.
    on_rejection: Mapping[str, str] = field(default_factory=dict)
    # Whether the configuration asks for the step's work. When it does not, the step only
    # records why (SKIPPED) as a plain call: a task run costs the orchestration about as
    # much CPU as the image work itself, and would show nothing but the skip.
    switched_on: Callable[[], bool] = lambda: True

    @property
    def name(self) -> str:
        """The task's name: its task runs are named after it, and `failed_step` records it."""
        return str(self.task.name)

    def run(self, work: ImageWork, *, inline: bool = False) -> ImageWork:
        """The step as a task run (or, `inline`, as a plain function): its product, or its
        error raised, including a rejection the step returned as a Failed state."""
        plain = inline or not self.switched_on()
        return raise_rejection(self.task.fn(work) if plain else self.task(work))

    def failure_fields(self, error: BaseException | None) -> dict[str, str]:
        return dict(self.on_rejection) if isinstance(error, ImageRejected) else {}


STEPS: tuple[Step, ...] = (
    Step(claim_record),
    Step(validate, on_rejection={"validation_status": "INVALID"}),
    # Before the thumbnails, which it may send to quarantine.
    Step(moderate, switched_on=lambda: get_settings().moderation_enabled),
    Step(make_thumbnails),
    Step(extract_metadata),
    Step(detect_labels, switched_on=lambda: get_settings().labels_backend != "off"),
    Step(store_record),
)


def failure_fields(step_name: str, error: BaseException | None) -> dict[str, str]:
    """How a failure in the step named `step_name` is labelled on the item."""
    for step in STEPS:
        if step.name == step_name:
            return step.failure_fields(error)
    return {}


def is_done(work: ImageWork) -> bool:
    """The work has its final item: stored by the last step, or found done by the claim."""
    return work.item is not None
