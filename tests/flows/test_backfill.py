"""The backfill flow against MiniStack and a temporary Prefect server."""

from __future__ import annotations

import itertools
import logging
import uuid

import pytest

from deployments.local.samples import samples
from flows.backfill import backfill
from image_pipeline.records import read_item
from image_pipeline.settings import get_settings
from tests.flows.artifacts import artifacts_of, progress_logged

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


def test_backfill_of_an_empty_prefix_does_nothing(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        state = backfill(prefix=f"uploads/nothing-{uuid.uuid4().hex}/", return_state=True)

    assert state.result() == {}
    assert progress_logged(caplog, "Backfill of") == [(0, 0)]
    [progress] = artifacts_of(state.state_details.flow_run_id, "progress")
    assert progress.data == 100  # nothing to do is done


def test_backfill_shows_its_progress_batch_by_batch(
    upload, caplog: pytest.LogCaptureFixture
) -> None:
    prefix = f"uploads/backfill-{uuid.uuid4().hex[:6]}/"
    for number in range(5):
        upload(f"{prefix}{number}.png", SAMPLES["logo.png"])

    with caplog.at_level(logging.INFO):
        state = backfill(prefix=prefix, batch_size=2, return_state=True)

    assert state.result() == {"COMPLETED": 5}
    logged = progress_logged(caplog, "Backfill of s3://")
    # Batches of 2, 2 and 1 end in any order: done grows by 1 or 2 from 0 to 5.
    assert logged[0] == (0, 5) and logged[-1] == (5, 0)
    steps = [later[0] - earlier[0] for earlier, later in itertools.pairwise(logged)]
    assert sorted(steps) == [1, 2, 2]
    [progress] = artifacts_of(state.state_details.flow_run_id, "progress")
    assert progress.key == "backfill-progress" and progress.data == 100
    assert (
        progress.description
        == f"Backfill of s3://{get_settings().uploads_bucket}/{prefix}: 5 of 5 images done, 0 left."
    )


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
