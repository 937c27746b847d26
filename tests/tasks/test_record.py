"""The record steps: the claim, the store, and a version that is already done."""

from __future__ import annotations

from dataclasses import replace

import pytest

from image_pipeline import records
from image_pipeline.errors import Superseded
from image_pipeline.models import Upload
from image_pipeline.records import read_item
from tasks.pipeline import STEPS
from tasks.record import claim_record, claim_upload, store_record
from tests import images
from tests.tasks.conftest import MakeWork


def _walk(work):
    for step in STEPS:
        work = step.task.fn(work)
        if work.item is not None:
            return work
    return work


def test_claim_then_store(work_for: MakeWork) -> None:
    work = claim_record.fn(work_for(images.png(), "a.png"))
    assert work.item is None
    assert read_item(work.source.key)["overall_processing_status"] == "PROCESSING"

    done = _walk(work)
    assert done.item and done.item["overall_processing_status"] == "COMPLETED"


def test_a_duplicate_run_cannot_claim_a_version_another_run_holds(work_for: MakeWork) -> None:
    first = claim_record.fn(work_for(images.png(), "a.png"))
    with pytest.raises(Superseded):
        claim_record.fn(replace(first, run_id="a-duplicate-run"))
    assert read_item(first.source.key)["flow_run_id"] == first.run_id


def test_a_version_already_done_is_handed_back_by_the_claim(work_for: MakeWork) -> None:
    done = _walk(work_for(images.png(), "a.png"))
    again = claim_record.fn(replace(done, item=None, run_id="another-run"))
    assert again.item == done.item


def test_store_refuses_a_run_that_lost_the_record(work_for: MakeWork) -> None:
    first = work_for(images.png(), "a.png")
    work = first
    for step in STEPS[:-1]:
        work = step.task.fn(work)
    records.release_claim(first.source.key, first.run_id)  # its lease ran out
    claim_record.fn(replace(first, run_id="a-later-run", force=True))  # another run claims it
    with pytest.raises(Superseded):
        store_record.fn(work)


def test_an_upload_is_claimed_as_its_current_version(work_for: MakeWork) -> None:
    source = work_for(images.png(), "a b+c.png").source
    upload = Upload(bucket=source.bucket, key=source.key, etag=f'"{source.etag}"')
    work = claim_upload.fn(upload, "a-run")
    assert work.source == source and work.item is None
    assert read_item(source.key)["flow_run_id"] == "a-run"


def test_an_upload_replaced_since_its_event_is_superseded_and_not_claimed(
    work_for: MakeWork,
) -> None:
    source = work_for(images.png(), "a.png").source
    with pytest.raises(Superseded, match="was replaced"):
        claim_upload.fn(Upload(bucket=source.bucket, key=source.key, etag="0" * 32), "a-run")
    assert read_item(source.key) is None
