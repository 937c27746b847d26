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


def test_a_failed_image_is_told_by_its_type_and_logged_in_full(upload, configure, caplog) -> None:
    key = f"uploads/backfill-{uuid.uuid4().hex[:6]}/photo.jpg"
    upload(key, SAMPLES["photo.jpg"])
    configure(thumbnails_bucket="no-such-bucket")

    assert backfill(prefix=key) == {"FAILED": 1}

    item = read_item(key)
    assert (item["error_type"], item["failed_step"]) == ("NoSuchBucket", "thumbnails")
    assert item["error_message"] == (
        "A bucket, table, topic or object the pipeline needs does not exist (NoSuchBucket); "
        "an operator can find the details in the run's log."
    )
    [logged] = [r for r in caplog.records if r.getMessage().startswith(f"{key} failed at step")]
    assert logged.name == "prefect.task_runs"  # the batch task's log in Prefect
    assert "thumbnails: NoSuchBucket: An error occurred (NoSuchBucket)" in logged.getMessage()
