"""AWS outages during a run, injected at the client (`tests/reliability/faults.py`).

A short outage: botocore's 3 attempts fail, the task's retry succeeds (visible as the task
run's run_count), the run completes. An outage that outlasts every retry: the image ends
FAILED with the reason and a rerun completes it; when DynamoDB itself stays down, the item
is left PROCESSING and `reconcile-stuck-images` records the failure once it is back. SNS
failing never fails a run nor loses its record, and the failing hook is logged.
"""

from __future__ import annotations

import logging
import uuid

import pytest

from flows.reconcile import reconcile_stuck_images
from image_pipeline.errors import describe_run_end
from image_pipeline.records import read_item
from tests import images
from tests.reliability.conftest import (
    Notices,
    put_upload,
    run,
    run_logs,
    thumbnail_objects,
    unique_key,
    wait_until,
)
from tests.reliability.faults import fail_next
from tests.support import task_runs

pytestmark = pytest.mark.usefixtures("prefect_server", "aws_stack")

GOOD = images.jpeg((320, 240))


def assert_completed(state, item, key: str) -> None:
    assert state.is_completed(), state
    assert item and item["overall_processing_status"] == "COMPLETED", item
    assert len(thumbnail_objects(key)) == 2


# --- short outages: retried, the run completes ------------------------------------------------


def test_dynamodb_outage_is_retried_and_the_run_completes(notices: Notices) -> None:
    key = unique_key("dynamodb-blip.jpg")
    with fail_next("dynamodb", 4, "UpdateItem") as fault:
        state, item = run(key, GOOD)

    assert fault.failed == 4
    assert_completed(state, item, key)
    assert item["attempts"] == 1  # the failed claims never reached the table
    assert task_runs(state)["claim-record"].run_count == 2  # botocore's 3 attempts, then 1 retry
    assert len(notices.wait_for(key)) == 1


def test_s3_outage_is_retried_and_the_run_completes(notices: Notices) -> None:
    key = unique_key("s3-blip.jpg")
    etag = put_upload(key, GOOD)
    with fail_next("s3", 4, "PutObject") as fault:
        state, item = run(key, etag=etag)

    assert fault.failed == 4
    assert_completed(state, item, key)
    assert task_runs(state)["thumbnails"].run_count == 2
    assert len(notices.wait_for(key)) == 1


def test_sns_outage_delays_the_notice_but_does_not_lose_it(notices: Notices, caplog) -> None:
    key = unique_key("sns-blip.jpg")
    with fail_next("sns", 4, "Publish") as fault:
        state, item = run(key, GOOD)

    assert fault.failed == 4
    assert_completed(state, item, key)
    [notice] = notices.wait_for(key)
    assert notice["Subject"] == "SUCCESS: Image Processing Complete"
    assert "trying again" in caplog.text


# --- outages that outlast every retry ---------------------------------------------------------


@pytest.mark.usefixtures("fast_retries")
def test_s3_down_for_the_whole_run_fails_with_the_reason_and_a_rerun_completes(
    notices: Notices,
) -> None:
    key = unique_key("s3-down.jpg")
    with fail_next("s3", operation="GetObject") as fault:
        state, item = run(key, GOOD)

        assert state.is_failed(), state
        assert task_runs(state)["validate"].run_count == 5  # the first try and 4 retries
        assert item and item["overall_processing_status"] == "FAILED"
        assert (item["error_type"], item["failed_step"]) == ("ServiceUnavailable", "validate")
        assert item["error_message"] == (
            "An AWS service was unavailable after retries (ServiceUnavailable)."
        )
        assert item.get("validation_status") != "INVALID"  # nothing is wrong with the image
        [notice] = notices.wait_for(key, settle=False)
        assert "ServiceUnavailable" in notice["Message"]
        fault.restore()

    state, item = run(key)  # "rerun": the same image, the object as it is now
    assert_completed(state, item, key)
    assert item["attempts"] == 2 and "error_type" not in item


@pytest.mark.usefixtures("fast_retries")
def test_dynamodb_down_for_the_rest_of_the_run_is_reconciled_once_it_is_back(
    notices: Notices, caplog
) -> None:
    """The claim succeeds, then DynamoDB stays down: neither `store` nor the failure hook
    can write, so the item stays PROCESSING until the reconciler records the failure."""
    prefix = f"uploads/rel-{uuid.uuid4().hex[:8]}/"
    key = prefix + "dynamodb-down.jpg"
    with fail_next("dynamodb", operation="UpdateItem", after=1) as fault:
        state, item = run(key, GOOD)
        assert state.is_failed(), state
        assert task_runs(state)["store"].run_count == 5
        assert item and item["overall_processing_status"] == "PROCESSING"
        assert "An error was encountered while running hook 'record_failure'" in caplog.text
        assert notices.wait_for(key, settle=False, timeout=1) == []
        fault.restore()

    caplog.clear()
    with caplog.at_level(logging.INFO):
        summary = reconcile_stuck_images(older_than_minutes=0, key_prefix=prefix)

    assert [(o.key, o.action, o.error_type) for o in summary.outcomes] == [
        (key, "marked FAILED", "FlowFailed")
    ]
    failed = read_item(key)
    assert failed and failed["overall_processing_status"] == "FAILED"
    assert (failed["error_type"], failed["failed_step"]) == ("FlowFailed", "store")
    assert failed["error_message"].startswith(describe_run_end("FlowFailed"))
    # The run's own reason (its state's message) is in the reconciling run's log, not the item.
    assert "ServiceUnavailable" not in failed["error_message"]
    [reason] = [r.getMessage() for r in caplog.records if " ended Failed: " in r.getMessage()]
    assert "(ServiceUnavailable) when calling the UpdateItem operation" in reason
    assert failed["flow_run_id"] == str(state.state_details.flow_run_id)
    [notice] = notices.wait_for(key, settle=False)
    assert notice["MessageAttributes"]["failed_step"]["Value"] == "store"

    state, item = run(key)  # and it can be rerun
    assert_completed(state, item, key)
    assert item["attempts"] == 2


@pytest.mark.usefixtures("fast_retries")
def test_sns_down_never_fails_a_run_nor_loses_its_record(notices: Notices, caplog) -> None:
    good, bad = unique_key("sns-down.jpg"), unique_key("sns-down-bad.jpg")
    with caplog.at_level(logging.INFO), fail_next("sns", operation="Publish"):
        good_state, good_item = run(good, GOOD)
        bad_state, bad_item = run(bad, images.TEXT)

    assert_completed(good_state, good_item, good)
    assert bad_state.is_failed()
    assert bad_item and bad_item["overall_processing_status"] == "FAILED"
    assert bad_item["error_type"] == "NotAnImage"
    for hook in ("notify_success", "record_failure"):
        assert f"An error was encountered while running hook {hook!r}" in caplog.text
    # The flow run's own log in Prefect, where operators look, says so too.
    run_id = good_state.state_details.flow_run_id

    def hook_error_logged() -> bool:
        return any("running hook 'notify_success'" in log.message for log in run_logs(run_id))

    wait_until(hook_error_logged, timeout=15, what="the hook's error in the flow run's logs")
