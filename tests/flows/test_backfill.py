"""The backfill flow against MiniStack and a temporary Prefect server."""

from __future__ import annotations

import uuid

import pytest

from deployments.local.samples import samples
from flows.backfill import backfill
from image_pipeline.records import read_item

pytestmark = pytest.mark.usefixtures("prefect_server")

SAMPLES = samples()


def test_backfill_processes_every_object_under_the_prefix(upload, configure) -> None:
    prefix = f"uploads/backfill-{uuid.uuid4().hex[:6]}/"
    names = ["photo.jpg", "logo.png", "phone.heic", "not-an-image.jpg", "truncated.jpg"]
    for name in names:
        upload(prefix + name, SAMPLES[name])
    upload(f"uploads/elsewhere-{uuid.uuid4().hex[:6]}.jpg", SAMPLES["photo.jpg"])

    counts = backfill(prefix=prefix, batch_size=2)

    assert counts == {"COMPLETED": 3, "FAILED": 2}
    assert read_item(prefix + "truncated.jpg")["error_type"] == "CorruptImage"
    assert read_item(prefix + "truncated.jpg")["failed_step"] == "validate"
    assert set(read_item(prefix + "phone.heic")["thumbnails"]) == {"100x100", "640x480"}

    assert backfill(prefix=prefix) == {"ALREADY_DONE": 3, "FAILED": 2}  # failed ones retried
    configure(thumbnail_sizes="64x64")
    assert backfill(prefix=prefix, force=True) == {"COMPLETED": 3, "FAILED": 2}
    assert set(read_item(prefix + "photo.jpg")["thumbnails"]) == {"64x64"}
    assert read_item(prefix + "photo.jpg")["attempts"] == 2


def test_backfill_of_an_empty_prefix_does_nothing() -> None:
    assert backfill(prefix=f"uploads/nothing-{uuid.uuid4().hex}/") == {}
