"""Duplicate deliveries and out-of-order runs: one item, one set of thumbnails, one notice,
and the newest upload wins, item and thumbnails (checked by their pixels), whatever the order.

The races are driven step by step with the plain task functions (`.fn`), in a fixed order,
rather than by racing threads; the concurrency tests check the same promises end to end.
"""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from prefect.client.schemas.objects import FlowRun
from prefect.states import Completed

from flows.hooks import _record_and_notify, notify_success
from flows.process_image import process_image
from image_pipeline import records
from image_pipeline.aws import client
from image_pipeline.errors import Superseded
from image_pipeline.imaging.render import fit_within
from image_pipeline.models import ImageWork, SourceObject
from image_pipeline.records import read_item
from image_pipeline.settings import get_settings
from image_pipeline.sources import head_source
from tasks.labels import detect_labels
from tasks.metadata import extract_metadata
from tasks.record import claim_record, store_record
from tasks.thumbnails import make_thumbnails
from tasks.validate import validate
from tests import images
from tests.flows.runner import run_process_image
from tests.reliability.conftest import (
    Notices,
    put_upload,
    run,
    thumbnail_objects,
    unique_key,
)

pytestmark = pytest.mark.usefixtures("prefect_server", "aws_stack")

RED, BLUE, GREEN = (220, 30, 30), (30, 30, 220), (30, 200, 30)
OLD = images.jpeg((800, 600), image=images.solid((800, 600), "RGB", RED))  # landscape, red
NEW = images.png((300, 600), image=images.solid((300, 600), "RGB", BLUE))  # portrait, blue
BOXES = {"100x100": (100, 100), "640x480": (640, 480)}


def assert_thumbnails_show(key: str, size: tuple[int, int], colour: tuple[int, int, int]) -> None:
    """Exactly one thumbnail per box, of `size` fitted into it, in `colour`."""
    stored = thumbnail_objects(key)
    assert len(stored) == len(BOXES), sorted(stored)
    for object_key, image in stored.items():
        label = object_key.rsplit("/", 1)[1].split(".")[0]
        assert image.size == fit_within(size, BOXES[label]), object_key
        pixel = image.convert("RGB").getpixel((image.width // 2, image.height // 2))
        assert all(abs(a - b) < 12 for a, b in zip(pixel, colour, strict=True)), pixel


def assert_one_success_notice(notices: Notices, key: str) -> None:
    found = notices.wait_for(key)
    assert [n["Subject"] for n in found] == ["SUCCESS: Image Processing Complete"]


# --- the same event, many times ---------------------------------------------------------------


def test_same_event_ten_times_in_a_row(notices: Notices) -> None:
    key = unique_key("ten-times.png")
    etag = put_upload(key, NEW)
    first = run_process_image(get_settings().uploads_bucket, key, etag)
    results = [run_process_image(get_settings().uploads_bucket, key, etag) for _ in range(9)]

    assert first["overall_processing_status"] == "COMPLETED"
    assert all(result == first for result in results)  # "already processed": the same item
    assert read_item(key) == first  # not even updated_at moved
    assert first["attempts"] == 1
    assert_thumbnails_show(key, (300, 600), BLUE)
    assert_one_success_notice(notices, key)


def outcomes_agree(key: str, results: list[Any]) -> dict[str, Any]:
    """Every run ended well, exactly one of them produced the item, the rest stood aside."""
    assert all(state.is_completed() for state in results), results
    item = read_item(key)
    assert item and item["overall_processing_status"] == "COMPLETED"
    producers = [s for s in results if str(s.state_details.flow_run_id) == item["flow_run_id"]]
    assert len(producers) == 1
    for state in results:
        status = state.result()["overall_processing_status"]
        assert status in ("COMPLETED", "SUPERSEDED"), status
    return item


def test_same_event_ten_times_at_once_in_threads(notices: Notices) -> None:
    key = unique_key("ten-threads.png")
    etag = put_upload(key, NEW)

    def one_run(_: int) -> Any:
        return run_process_image(get_settings().uploads_bucket, key, etag, return_state=True)

    with ThreadPoolExecutor(max_workers=10) as pool:
        results = list(pool.map(one_run, range(10)))

    outcomes_agree(key, results)
    assert_thumbnails_show(key, (300, 600), BLUE)
    assert_one_success_notice(notices, key)


def test_same_event_four_times_at_once_with_asyncio_gather(notices: Notices) -> None:
    key = unique_key("four-gathered.png")
    etag = put_upload(key, NEW)

    async def all_at_once() -> list[Any]:
        bucket = get_settings().uploads_bucket
        runs = [process_image(bucket, key, etag, return_state=True) for _ in range(4)]
        return await asyncio.gather(*runs)

    outcomes_agree(key, asyncio.run(all_at_once()))
    assert_thumbnails_show(key, (300, 600), BLUE)
    assert_one_success_notice(notices, key)


def test_reupload_of_identical_content_is_not_processed_again(notices: Notices) -> None:
    key = unique_key("same-bytes.png")
    _, first = run(key, NEW)
    state, second = run(key, NEW)  # a new upload event for the same bytes: the same ETag

    assert state.is_completed()
    assert first and second == first  # ALREADY_DONE: not even updated_at moved
    assert state.result() == first
    assert_one_success_notice(notices, key)


# --- two uploads of one key, their runs interleaved --------------------------------------------


class Run:
    """One process-image run, step by step, with the plain task functions."""

    def __init__(self, key: str, etag: str) -> None:
        source: SourceObject = head_source(get_settings().uploads_bucket, key, etag)
        self.work = ImageWork(source=source, run_id=str(uuid.uuid4()))

    def claim_and_validate(self) -> Run:
        self.work = claim_record.fn(self.work)
        assert self.work.item is None
        self.work = validate.fn(self.work)
        return self

    def thumbnails(self) -> ImageWork:
        return make_thumbnails.fn(self.work)

    def store(self, with_thumbnails: ImageWork) -> dict[str, Any]:
        work = detect_labels.fn(extract_metadata.fn(with_thumbnails))
        item = store_record.fn(work).item
        assert item is not None
        return item

    def finish(self) -> dict[str, Any]:
        return self.store(self.thumbnails())


def test_older_upload_finishing_last_changes_nothing(notices: Notices) -> None:
    key = unique_key("two-uploads.img")
    older = Run(key, put_upload(key, OLD)).claim_and_validate()  # has the old bytes in hand
    newer = Run(key, put_upload(key, NEW)).claim_and_validate()
    newer_item = newer.finish()

    with pytest.raises(Superseded):
        older.thumbnails()  # it no longer holds the claim: nothing is uploaded
    with pytest.raises(Superseded):
        older.store(older.work)

    assert read_item(key) == newer_item
    assert newer_item["etag"] == newer.work.source.etag
    assert newer_item["extracted_metadata"]["format"] == "PNG"
    assert_thumbnails_show(key, (300, 600), BLUE)


@pytest.mark.parametrize("earlier_thumbnails", [False, True], ids=["first-write", "replace"])
def test_older_run_stalled_right_before_its_upload_cannot_overwrite(
    earlier_thumbnails: bool,
) -> None:
    """The older run passed its claim check, and stalls right before it writes: the newer run
    claims, uploads and stores meanwhile. S3's conditional write refuses the stale upload,
    whether the thumbnails are new (If-None-Match) or replace earlier ones (If-Match)."""
    key = unique_key("stalled.img")
    if earlier_thumbnails:
        first = images.jpeg((400, 400), image=images.solid((400, 400), "RGB", GREEN))
        Run(key, put_upload(key, first)).claim_and_validate().finish()
        assert_thumbnails_show(key, (400, 400), GREEN)
    older = Run(key, put_upload(key, OLD)).claim_and_validate()
    stall_on = "IfMatch" if earlier_thumbnails else "IfNoneMatch"
    newer: list[dict[str, Any]] = []

    def newer_run_meanwhile(params: dict[str, Any], **_: Any) -> None:
        generation = params.get("Metadata", {}).get("generation")
        if stall_on in params and generation and not newer:
            newer.append({})  # once; the newer run's own uploads pass through here too
            newer[0] = Run(key, put_upload(key, NEW)).claim_and_validate().finish()

    s3 = client("s3")
    s3.meta.events.register("provide-client-params.s3.PutObject", newer_run_meanwhile)
    try:
        with pytest.raises(Superseded, match="later claim"):
            older.thumbnails()
    finally:
        s3.meta.events.unregister("provide-client-params.s3.PutObject", newer_run_meanwhile)

    assert newer and newer[0]["overall_processing_status"] == "COMPLETED"
    assert read_item(key) == newer[0]
    assert_thumbnails_show(key, (300, 600), BLUE)


def test_a_duplicate_within_the_claim_lease_leaves_the_image_to_the_first_run() -> None:
    key = unique_key("duplicate.png")
    etag = put_upload(key, NEW)
    first = Run(key, etag).claim_and_validate()

    with pytest.raises(Superseded):
        Run(key, etag).claim_and_validate()
    assert read_item(key)["flow_run_id"] == first.work.run_id


def test_a_failed_duplicate_neither_clobbers_the_live_run_nor_announces(
    notices: Notices,
) -> None:
    """Two runs of one version: the first loses its claim to the second (its lease ran out),
    then fails (an outage). Its failure hook must leave the second run's claim alone and stay
    silent; the second run completes and announces, once."""
    key = unique_key("failed-duplicate.png")
    etag = put_upload(key, NEW)
    first = Run(key, etag).claim_and_validate()
    records.release_claim(key, first.work.run_id)  # as if its lease had run out
    second = Run(key, etag).claim_and_validate()

    # What its failure hook does (the plain run has no task runs in Prefect to wait for).
    _record_and_notify(
        flow_run_of(first, key, etag), "ServiceUnavailable", "S3 was down.", settle_seconds=0
    )
    assert read_item(key)["overall_processing_status"] == "PROCESSING"
    item = second.finish()
    notify_success(None, flow_run_of(second, key, etag), Completed())

    assert item["overall_processing_status"] == "COMPLETED"
    assert_one_success_notice(notices, key)


def flow_run_of(run: Run, key: str, etag: str) -> FlowRun:
    parameters = {"bucket": get_settings().uploads_bucket, "key": key, "etag": etag}
    return FlowRun(
        id=uuid.UUID(run.work.run_id), name=key, flow_id=uuid.uuid4(), parameters=parameters
    )
