"""The flow-state hooks: the item and the notice follow the run's final state."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.states import Completed, Crashed, Running

from flows.hooks import notify_success, record_crash
from flows.process_image import process_image
from image_pipeline.errors import describe_run_end
from image_pipeline.records import read_item
from image_pipeline.settings import get_settings
from tasks.labels import detect_labels
from tests import images
from tests.flows.runner import run_process_image
from tests.support import unique_key

pytestmark = pytest.mark.usefixtures("prefect_server", "aws_stack")


def about(notices: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    return [n for n in notices if n["MessageAttributes"]["imageId"]["Value"] == key]


def test_a_crash_before_any_step_is_recorded_and_announced(
    upload: Callable[[str, bytes], str], notifications: Callable[[], list[dict[str, Any]]], caplog
) -> None:
    key = unique_key("crashed.png")
    parameters = {"bucket": get_settings().uploads_bucket, "key": key, "etag": upload(key, b"x")}
    with get_client(sync_client=True) as prefect:
        run = prefect.create_flow_run(process_image, parameters=parameters, state=Crashed())

    record_crash(None, run, Crashed(message="The process was killed."))

    item = read_item(key)
    assert item and item["overall_processing_status"] == "FAILED"
    assert (item["error_type"], item["failed_step"]) == ("Crashed", "flow")
    assert item["error_message"] == describe_run_end("Crashed")
    [notice] = about(notifications(), key)
    assert notice["MessageAttributes"]["processing_status"]["Value"] == "FAILURE"
    assert describe_run_end("Crashed") in notice["Message"]
    # The state's message goes to the run's log, not to the item or the notice.
    assert "killed" not in notice["Message"]
    [logged] = [r for r in caplog.records if r.getMessage().endswith("The process was killed.")]
    assert (logged.name, logged.flow_run_id) == ("prefect.flow_runs", str(run.id))


def test_a_crash_is_blamed_on_the_step_whose_running_state_the_server_records_late(
    upload: Callable[[str, bytes], str], notifications: Callable[[], list[dict[str, Any]]]
) -> None:
    """The dead process sent its step's Running state, but the server's task-run recorder
    writes on an interval: the hook must not read the records before they include it."""
    key = unique_key("crashed-in-labels.png")
    parameters = {"bucket": get_settings().uploads_bucket, "key": key, "etag": upload(key, b"x")}
    with get_client(sync_client=True) as prefect:
        run = prefect.create_flow_run(process_image, parameters=parameters, state=Crashed())

    def record_the_running_step() -> None:
        with get_client(sync_client=True) as prefect:
            prefect.create_task_run(detect_labels, run.id, "0", name="labels-0", state=Running())

    late = threading.Timer(0.5, record_the_running_step)  # the recorder's flush, a bit late
    late.start()
    try:
        record_crash(None, run, Crashed(message="The process was killed."))
    finally:
        late.join()

    item = read_item(key)
    assert item and (item["error_type"], item["failed_step"]) == ("Crashed", "labels")
    [notice] = about(notifications(), key)
    assert notice["MessageAttributes"]["failed_step"]["Value"] == "labels"


def test_only_the_run_that_wrote_the_result_announces_it(
    upload: Callable[[str, bytes], str], notifications: Callable[[], list[dict[str, Any]]]
) -> None:
    key = unique_key("done.png")
    upload(key, images.png())
    state = run_process_image(get_settings().uploads_bucket, key, return_state=True)
    with get_client(sync_client=True) as prefect:
        winner = prefect.read_flow_run(state.state_details.flow_run_id)
        other = prefect.create_flow_run(process_image, parameters=winner.parameters)
    notifications()  # the winner's own notice

    notify_success(None, other, Completed())  # a duplicate run that found the work done
    assert about(notifications(), key) == []
    notify_success(None, winner, Completed())
    assert len(about(notifications(), key)) == 1
