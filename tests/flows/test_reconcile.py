"""reconcile-stuck-images against MiniStack and a real (temporary) Prefect server.

The flow runs the items point at are real runs on that server, created directly in the
state under test (crashed, failed, cancelled, completed, running, scheduled).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.states import Cancelled, Completed, Crashed, Failed, Running, Scheduled, State

import flows.reconcile
from flows.process_image import process_image
from flows.reconcile import reconcile_stuck_images
from image_pipeline.aws import client
from image_pipeline.errors import describe_run_end
from image_pipeline.models import SourceObject
from image_pipeline.outcomes import Summary
from image_pipeline.records import mark_processing, read_item, to_dynamo
from image_pipeline.settings import get_settings
from tasks.reconcile import judge_runs
from tests.flows.artifacts import artifacts_of, progress_logged

pytestmark = pytest.mark.usefixtures("prefect_server", "aws_stack")

ETAG = "0" * 32


@pytest.fixture
def prefix() -> str:
    return f"uploads/reconcile-{uuid.uuid4().hex[:8]}/"


def flow_run_in(state: State, key: str) -> str:
    """A process-image flow run for `key`, created on the server in `state`."""
    parameters = {"bucket": get_settings().uploads_bucket, "key": key, "etag": ETAG}
    with get_client(sync_client=True) as prefect:
        run = prefect.create_flow_run(process_image, name=key, parameters=parameters, state=state)
    assert run.state and run.state.type == state.type
    return str(run.id)


def stuck(key: str, flow_run_id: str, minutes_ago: float = 20) -> int:
    """A PROCESSING item, last updated `minutes_ago`, claimed by `flow_run_id`."""
    updated_at = int(time.time() - minutes_ago * 60)
    item = {
        "ImageKey": key,
        "s3_bucket_original": get_settings().uploads_bucket,
        "s3_key_original": key,
        "overall_processing_status": "PROCESSING",
        "etag": ETAG,
        "flow_run_id": flow_run_id,
        "attempts": 1,
        "created_at": updated_at,
        "updated_at": updated_at,
    }
    client("dynamodb").put_item(
        TableName=get_settings().table_name,
        Item={name: to_dynamo(value) for name, value in item.items()},
    )
    return updated_at


def by_key(summary: Summary) -> dict[str, tuple[str, str | None]]:
    return {o.key: (o.action, o.error_type) for o in summary.outcomes}


def test_marks_images_of_finished_runs_failed_and_leaves_the_rest(
    prefix: str, notifications: Callable[[], list[dict[str, Any]]], caplog
) -> None:
    finished = {
        "crashed.jpg": (Crashed(message="Process exited with code 137."), "Crashed"),
        "failed.jpg": (Failed(message="ClientError: ServiceUnavailable"), "FlowFailed"),
        "cancelled.jpg": (Cancelled(message="Cancelled by a user."), "Cancelled"),
        "completed.jpg": (Completed(), "Orphaned"),
    }
    for name, (state, _) in finished.items():
        stuck(prefix + name, flow_run_in(state, prefix + name))
    stuck(prefix + "unknown.jpg", str(uuid.uuid4()))
    stuck(prefix + "running.jpg", flow_run_in(Running(), prefix + "running.jpg"))
    stuck(prefix + "scheduled.jpg", flow_run_in(Scheduled(), prefix + "scheduled.jpg"))
    fresh = stuck(prefix + "fresh.jpg", flow_run_in(Crashed(), prefix + "fresh.jpg"), 1)

    with caplog.at_level(logging.INFO):
        state = reconcile_stuck_images(key_prefix=prefix, return_state=True)
    summary = state.result()

    expected = {prefix + name: ("marked FAILED", error) for name, (_, error) in finished.items()}
    expected[prefix + "unknown.jpg"] = ("marked FAILED", "Orphaned")
    expected[prefix + "running.jpg"] = ("left alone: run not finished", None)
    expected[prefix + "scheduled.jpg"] = ("left alone: run not finished", None)
    assert by_key(summary) == expected  # fresh.jpg: updated under 10 minutes ago
    for key, (action, error_type) in expected.items():
        item = read_item(key)
        assert item
        if action == "marked FAILED":
            assert item["overall_processing_status"] == "FAILED"
            assert item["error_type"] == error_type
            assert item["etag"] == ETAG and item["attempts"] == 1
            assert "recorded by reconcile-stuck-images" in item["error_message"]
        else:
            assert item["overall_processing_status"] == "PROCESSING"
    for name, (run_state, error_type) in finished.items():
        item = read_item(prefix + name)
        assert item["error_message"] == (
            f"{describe_run_end(error_type)} (Flow run {prefix + name!r} ({item['flow_run_id']}) "
            f"ended {run_state.name} and left the image PROCESSING; "
            "recorded by reconcile-stuck-images.)"
        )
        # The run's own message stays in Prefect and in the reconciling run's log.
        if run_state.message:
            assert run_state.message not in item["error_message"]
            assert f"ended {run_state.name}: {run_state.message}" in caplog.text
    assert "unknown to the Prefect server" in read_item(prefix + "unknown.jpg")["error_message"]
    assert read_item(prefix + "fresh.jpg")["updated_at"] == fresh

    notices = notifications()
    assert sorted(n["MessageAttributes"]["imageId"]["Value"] for n in notices) == sorted(
        key for key, (action, _) in expected.items() if action == "marked FAILED"
    )
    assert {n["Subject"] for n in notices} == {"FAILURE: Image Processing Error"}
    [artifact] = artifacts_of(state.state_details.flow_run_id, "table")
    assert artifact.key == "reconcile-stuck-images" and "5 marked FAILED" in artifact.description
    # 7 stuck images, no lost one: progress image by image, in the log and on the server.
    assert progress_logged(caplog, "Stuck or unrecorded") == [(n, 7 - n) for n in range(8)]
    [progress] = artifacts_of(state.state_details.flow_run_id, "progress")
    assert progress.key == "reconcile-stuck-images-progress" and progress.data == 100
    assert progress.description.endswith(": 7 of 7 images done, 0 left.")

    again = reconcile_stuck_images(key_prefix=prefix)  # nothing more to do
    assert {action for action, _ in by_key(again).values()} == {"left alone: run not finished"}


def test_an_image_claimed_or_completed_meanwhile_is_never_overwritten(
    prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between the listing and the write, a rerun claims one image and another completes:
    the conditional write leaves both as they are."""
    reclaimed, completed = prefix + "reclaimed.jpg", prefix + "completed.jpg"
    for key in (reclaimed, completed):
        stuck(key, flow_run_in(Crashed(), key))
    newer_run = str(uuid.uuid4())

    def judge_then_things_change(images: list[Any]) -> dict[str, Any]:
        verdicts = judge_runs.fn(images)
        source = SourceObject(
            bucket=get_settings().uploads_bucket,
            key=reclaimed,
            etag=ETAG,
            size=1,
            last_modified="2024-05-01T00:00:00Z",
        )
        assert mark_processing(source, newer_run)
        client("dynamodb").update_item(
            TableName=get_settings().table_name,
            Key={"ImageKey": {"S": completed}},
            UpdateExpression="SET overall_processing_status = :done",
            ExpressionAttributeValues={":done": {"S": "COMPLETED"}},
        )
        return verdicts

    monkeypatch.setattr(flows.reconcile, "judge_runs", judge_then_things_change)
    summary = reconcile_stuck_images(key_prefix=prefix)

    assert by_key(summary) == {
        reclaimed: ("skipped: changed since", "Crashed"),
        completed: ("skipped: changed since", "Crashed"),
    }
    item = read_item(reclaimed)
    assert item and (item["overall_processing_status"], item["flow_run_id"]) == (
        "PROCESSING",
        newer_run,
    )
    assert read_item(completed)["overall_processing_status"] == "COMPLETED"


def test_dry_run_changes_nothing(prefix: str) -> None:
    key = prefix + "crashed.jpg"
    updated_at = stuck(key, flow_run_in(Crashed(), key))

    summary = reconcile_stuck_images(key_prefix=prefix, dry_run=True)

    assert by_key(summary) == {key: ("would mark FAILED", "Crashed")}
    item = read_item(key)
    assert item and item["overall_processing_status"] == "PROCESSING"
    assert item["updated_at"] == updated_at


def test_the_age_threshold_is_a_parameter(prefix: str) -> None:
    key = prefix + "crashed.jpg"
    stuck(key, flow_run_in(Crashed(), key), minutes_ago=3)

    assert reconcile_stuck_images(key_prefix=prefix, dry_run=True).outcomes == []
    summary = reconcile_stuck_images(key_prefix=prefix, older_than_minutes=2)
    assert by_key(summary) == {key: ("marked FAILED", "Crashed")}


def test_records_the_image_of_a_run_that_crashed_before_it_started(
    prefix: str, notifications: Callable[[], list[dict[str, Any]]], caplog
) -> None:
    lost, recorded = prefix + "lost.jpg", prefix + "recorded.jpg"
    refused = "Failed to submit flow run to infrastructure: Server error '503 Service Unavailable'"
    lost_run = flow_run_in(Crashed(message=refused), lost)
    flow_run_in(Crashed(message=refused), recorded)
    stuck(recorded, str(uuid.uuid4()), minutes_ago=1)  # another run has it in hand

    assert by_key(reconcile_stuck_images(key_prefix=prefix, dry_run=True)) == {
        lost: ("would mark FAILED", "Crashed")
    }
    assert read_item(lost) is None
    with caplog.at_level(logging.INFO):
        summary = reconcile_stuck_images(key_prefix=prefix)

    assert by_key(summary) == {lost: ("marked FAILED", "Crashed")}
    item = read_item(lost)
    assert item and item["overall_processing_status"] == "FAILED"
    assert item["error_type"] == "Crashed" and item["failed_step"] == "flow"
    assert item["flow_run_id"] == lost_run and item["etag"] == ETAG
    assert item["error_message"] == (
        f"{describe_run_end('Crashed')} (Flow run {lost!r} ({lost_run}) crashed before it "
        "recorded anything for the image; recorded by reconcile-stuck-images.)"
    )
    assert f"({lost_run}) ended Crashed: {refused}" in caplog.text  # for operators only
    assert read_item(recorded)["overall_processing_status"] == "PROCESSING"
    assert [n["MessageAttributes"]["imageId"]["Value"] for n in notifications()] == [lost]

    assert by_key(reconcile_stuck_images(key_prefix=prefix)) == {}  # recorded once, not again
    assert notifications() == []  # and no second notice
