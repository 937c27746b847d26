"""The labels step: SKIPPED with the reason when labelling is off (the emulator's default)."""

from __future__ import annotations

from image_pipeline.labels import OFF_REASON
from tasks.labels import detect_labels
from tasks.validate import validate
from tests import images
from tests.tasks.conftest import MakeWork


def test_labels_off_are_skipped_with_the_reason(work_for: MakeWork, configure) -> None:
    configure(labels="off")
    work = detect_labels.fn(validate.fn(work_for(images.jpeg((100, 100)), "a.jpg")))
    assert work.labels is not None
    assert (work.labels.status, work.labels.reason) == ("SKIPPED", OFF_REASON)
