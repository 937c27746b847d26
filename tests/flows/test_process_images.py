"""process-images against MiniStack and a real (temporary) Prefect server."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, FlowRunFilterTags
from prefect.states import Crashed

from deployments.local.processes import wait_until
from flows.hooks import split_crashed_batch
from flows.process_images import process_images
from image_pipeline import records
from image_pipeline.errors import describe_run_end
from image_pipeline.models import ImageWork
from image_pipeline.records import read_item
from image_pipeline.settings import get_settings
from image_pipeline.sources import head_source
from tasks.pipeline import STEPS
from tasks.record import claim_record
from tests import images
from tests.support import unique_key

pytestmark = pytest.mark.usefixtures("prefect_server", "aws_stack")

Notices = Callable[[], list[dict[str, Any]]]


def batch(upload: Callable[[str, bytes], str], *files: tuple[str, bytes]) -> list[dict[str, Any]]:
    bucket = get_settings().uploads_bucket
    return [
        {"bucket": bucket, "key": (key := unique_key(name)), "etag": upload(key, data)}
        for name, data in files
    ]


def about(notices: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    return [n for n in notices if n["MessageAttributes"]["imageId"]["Value"] == key]


def test_each_image_of_a_batch_ends_with_its_own_record_and_notice(
    upload: Callable[[str, bytes], str], notifications: Notices
) -> None:
    images_ = batch(
        upload,
        ("a.jpg", images.jpeg((800, 600))),
        ("b b+c.png", images.png((300, 200))),
        ("not-an-image.jpg", b"hello"),
    )
    state = process_images(images_, return_state=True)
    summary = state.result(raise_on_failure=False)
    run_id = str(state.state_details.flow_run_id)

    # Failed, so that the UI offers Retry for the image that failed.
    assert state.is_failed()
    assert {o.key: o.action for o in summary.outcomes} == {
        images_[0]["key"]: "COMPLETED",
        images_[1]["key"]: "COMPLETED",
        images_[2]["key"]: "FAILED",
    }
    items = [read_item(image["key"]) for image in images_]
    assert [item["overall_processing_status"] for item in items] == [
        "COMPLETED",
        "COMPLETED",
        "FAILED",
    ]
    assert {item["flow_run_id"] for item in items} == {run_id}
    assert (items[2]["error_type"], items[2]["failed_step"]) == ("NotAnImage", "validate")
    # The run's state names the failure in one line: its key, type and reason.
    failed_key, reason = images_[2]["key"], items[2]["error_message"]
    assert state.message == f"1 of 3 image(s) failed: {failed_key}: NotAnImage: {reason}"
    assert items[2]["validation_status"] == "INVALID"
    received = notifications()
    statuses = [
        [n["MessageAttributes"]["processing_status"]["Value"] for n in about(received, i["key"])]
        for i in images_
    ]
    assert statuses == [["SUCCESS"], ["SUCCESS"], ["FAILURE"]]


def steps_recorded(
    flow_run_id: UUID | None, keys: set[str], expected: set[str]
) -> tuple[set[str], set[str]]:
    """The names of the run's task runs and of its steps, once `keys` and `expected` are in.

    Task runs reach the server as events, after the flow returns: the last ones may be a
    moment behind, so this waits (30 s at most) and returns what it found either way.
    """
    names: set[str] = set()
    steps: set[str] = set()

    def recorded() -> bool:
        nonlocal names, steps
        with get_client(sync_client=True) as prefect:
            task_runs = prefect.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
            )
        names = {run.name for run in task_runs}
        steps = {run.name.rsplit("-", 1)[0] for run in task_runs} - names
        return keys <= names and expected <= steps

    with contextlib.suppress(TimeoutError):
        wait_until(recorded, timeout=30, what="the task runs of the batch")
    return names, steps


def test_each_image_is_a_task_run_named_by_its_key_with_its_steps(
    upload: Callable[[str, bytes], str],
) -> None:
    images_ = batch(upload, ("a.jpg", images.jpeg((200, 100))), ("b.jpg", images.jpeg()))
    state = process_images(images_, return_state=True)
    expected = {step.name for step in STEPS if step.switched_on()}
    keys = {image["key"] for image in images_}
    names, steps = steps_recorded(state.state_details.flow_run_id, keys, expected)
    assert keys <= names
    assert expected <= steps


def test_a_step_switched_off_leaves_its_reason_and_no_task_run(
    upload: Callable[[str, bytes], str], configure: Callable[..., None]
) -> None:
    configure(moderation="off", labels="off")
    images_ = batch(upload, ("a.jpg", images.jpeg()))
    state = process_images(images_, return_state=True)
    expected = {"claim-record", "validate", "thumbnails", "metadata", "store"}
    keys = {images_[0]["key"]}
    _, steps = steps_recorded(state.state_details.flow_run_id, keys, expected)
    assert expected <= steps and not {"moderation", "labels"} & steps
    item = read_item(images_[0]["key"])
    assert (item["moderation_status"], item["labels_status"]) == ("SKIPPED", "SKIPPED")


def test_a_redelivered_batch_processes_nothing_twice(
    upload: Callable[[str, bytes], str], notifications: Notices
) -> None:
    images_ = batch(upload, ("a.jpg", images.jpeg()))
    process_images(images_)
    first = read_item(images_[0]["key"])
    notifications()

    again = process_images(images_)

    assert [o.action for o in again.outcomes] == ["ALREADY_DONE"]
    assert read_item(images_[0]["key"]) == first
    assert about(notifications(), images_[0]["key"]) == []


def test_a_duplicate_while_another_run_holds_the_image_is_left_to_it(
    upload: Callable[[str, bytes], str],
) -> None:
    [image] = batch(upload, ("a.jpg", images.jpeg()))
    source = head_source(image["bucket"], image["key"], image["etag"])
    claim_record.fn(ImageWork(source=source, run_id="the-first-run"))  # still working on it

    summary = process_images([image])

    assert [o.action for o in summary.outcomes] == ["SUPERSEDED"]
    assert read_item(image["key"])["flow_run_id"] == "the-first-run"


@pytest.fixture(scope="module")
def deployment(prefect_server: None) -> UUID:
    return process_images.to_deployment(name="process-images").apply()


def test_after_a_crash_in_flight_images_run_alone_and_the_rest_together(
    deployment: UUID, upload: Callable[[str, bytes], str], notifications: Notices
) -> None:
    done, in_flight, untouched = batch(
        upload, ("done.jpg", images.jpeg()), ("in-flight.jpg", images.jpeg()), ("b.jpg", b"x")
    )
    with get_client(sync_client=True) as prefect:
        crashed = prefect.create_flow_run_from_deployment(
            deployment, parameters={"images": [done, in_flight, untouched]}, state=Crashed()
        )
    run_id = str(crashed.id)
    for image, status in ((done, "COMPLETED"), (in_flight, "PROCESSING")):
        source = head_source(image["bucket"], image["key"], image["etag"])
        records.mark_processing(source, run_id)
        if status == "COMPLETED":
            records.mark_completed(source, run_id, {"format": "JPEG"}, [], _no_labels())

    split_crashed_batch(None, crashed, Crashed(message="killed"))
    statuses = [n["MessageAttributes"]["processing_status"]["Value"] for n in notifications()]
    split_crashed_batch(None, crashed, Crashed(message="killed"))  # the same split, once

    with get_client(sync_client=True) as prefect:
        reruns = prefect.read_flow_runs(
            flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=["after-crash"]))
        )
    mine = [r for r in reruns if (r.idempotency_key or "").startswith(run_id)]
    assert sorted([i["key"] for i in r.parameters["images"]] for r in mine) == sorted(
        [[in_flight["key"]], [untouched["key"]]]
    )
    assert statuses == ["SUCCESS"]  # the image it had finished, announced by the hook
    assert read_item(in_flight["key"])["claim_expires_at"] == 0  # free for its new run


def test_a_crashed_batch_of_one_is_the_image_at_fault(
    deployment: UUID, upload: Callable[[str, bytes], str], notifications: Notices
) -> None:
    [image] = batch(upload, ("bomb.jpg", images.jpeg()))
    with get_client(sync_client=True) as prefect:
        crashed = prefect.create_flow_run_from_deployment(
            deployment, parameters={"images": [image]}, state=Crashed()
        )
    source = head_source(image["bucket"], image["key"], image["etag"])
    records.mark_processing(source, str(crashed.id))

    split_crashed_batch(None, crashed, Crashed(message="Process exited with code -9."))

    item = read_item(image["key"])
    assert (item["overall_processing_status"], item["error_type"]) == ("FAILED", "Crashed")
    assert item["error_message"] == describe_run_end("Crashed")  # the details: the run's log
    [notice] = about(notifications(), image["key"])
    assert notice["MessageAttributes"]["processing_status"]["Value"] == "FAILURE"


def _no_labels() -> Any:
    from image_pipeline.models import Labels

    return Labels(status="SKIPPED", reason="test")
