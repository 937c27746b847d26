"""Outages of the stack's own parts: a killed flow-run process, the worker, the Prefect server.

Each test waits until no image is in flight before it stops anything, so it interrupts
only its own image, and restarts what it stopped even when it fails.
"""

from __future__ import annotations

import os
import signal
from typing import Any
from urllib.parse import quote

import httpx

from deployments.local import stack
from deployments.local.processes import wait_until
from deployments.local.samples import samples
from tests import support
from tests.api.conftest import eventbridge_event
from tests.e2e.conftest import (
    SETTINGS,
    aws,
    flow_runs_for,
    keys_of,
    notices_for,
    process_image_runs,
    status,
    wait_for_final,
    wait_for_idle,
    wait_for_status,
)
from tests.fakes.rekognition import FakeRekognition

PHOTO = samples()["photo.jpg"]


def unique_key(name: str) -> str:
    return support.unique_key(name, "outage-")


def flow_run_process(run: dict[str, Any]) -> int | None:
    """The process the worker started for this flow run: the pid it recorded on the run."""
    pid = run.get("infrastructure_pid")
    return int(pid.rsplit(":", 1)[-1]) if pid else None


def test_a_killed_flow_run_process_ends_failed_with_a_notice_and_a_rerun_completes(
    local: stack.Stack, rekognition: FakeRekognition, notices
) -> None:
    key = unique_key("killed.jpg")
    wait_for_idle(local)
    rekognition.hold()  # the run stops in its labels step, mid-run, until released
    try:
        aws(local, "s3").put_object(Bucket=SETTINGS.uploads_bucket, Key=key, Body=PHOTO)
        assert rekognition.held.wait(120), "the run never reached Rekognition"
        assert (status(local, key) or {}).get("overall_processing_status") == "PROCESSING"
        [run] = flow_runs_for(local, key)
        pid = flow_run_process(run)
        assert pid, "the worker recorded no process for the running flow run"
        os.kill(pid, signal.SIGKILL)
        item = wait_for_final(local, key)
    finally:
        rekognition.release()

    assert item["overall_processing_status"] == "FAILED", item
    assert item["error_type"] == "Crashed" and item["failed_step"] == "labels", item
    [run] = flow_runs_for(local, key)
    assert run["state_type"] == "CRASHED"
    wait_until(lambda: notices_for(notices, key), timeout=60, what=f"a notice for {key}")
    [notice] = notices_for(notices, key)
    assert notice["MessageAttributes"]["processing_status"]["Value"] == "FAILURE"

    response = httpx.post(
        f"{local.api_url}/images/{quote(key, safe='/')}/reprocess",
        headers=local.operator_headers,
        timeout=30,
    )
    assert response.status_code == 202, response.text
    item = wait_for_status(local, key, "COMPLETED")
    assert item["attempts"] == 2 and item["labels_status"] == "COMPLETED", item


def test_uploads_made_while_the_worker_is_down_run_when_it_returns(
    services: stack.Running,
) -> None:
    local = services.stack
    keys = [unique_key(f"while-down-{i}.jpg") for i in range(3)]
    wait_for_idle(local)
    with services.worker.stopped():
        for key in keys:
            aws(local, "s3").put_object(Bucket=SETTINGS.uploads_bucket, Key=key, Body=PHOTO)
        wait_until(
            lambda: waiting_runs(local) >= set(keys),
            timeout=60,
            what="a scheduled run per upload",
        )
        assert all(status(local, key) is None for key in keys), "processed with no worker"

    for key in keys:
        assert wait_for_final(local, key)["overall_processing_status"] == "COMPLETED"
        assert len(flow_runs_for(local, key)) == 1


def test_a_webhook_call_while_prefect_is_down_gets_503_and_its_redelivery_runs_once(
    services: stack.Running, notices
) -> None:
    local = services.stack
    key = unique_key("prefect-down.jpg")
    s3 = aws(local, "s3")
    wait_for_idle(local)
    with services.prefect_server.stopped():
        # The upload's own delivery (S3 -> EventBridge -> webhook) meets the outage too;
        # MiniStack logs it and drops it (it does not model EventBridge's retries).
        dropped = refused_deliveries(local)
        etag = s3.put_object(Bucket=SETTINGS.uploads_bucket, Key=key, Body=PHOTO)["ETag"]
        wait_until(
            lambda: refused_deliveries(local) > dropped,
            timeout=30,
            what="EventBridge's delivery to be refused",
        )
        event = eventbridge_event(key, etag=etag.strip('"'), size=len(PHOTO))
        refused = post_event(local, event)
        assert refused.status_code == 503, refused.text
        assert refused.json()["message"]
        assert status(local, key) is None

    # EventBridge redelivers a refused event (its retry policy), sometimes more than once.
    assert post_event(local, event).status_code == 202
    assert post_event(local, event).status_code == 202
    assert wait_for_final(local, key)["overall_processing_status"] == "COMPLETED"
    wait_until(lambda: notices_for(notices, key), timeout=60, what=f"a notice for {key}")
    wait_for_idle(local)
    assert len(flow_runs_for(local, key)) == 1
    assert len(notices_for(notices, key)) == 1
    assert services.worker.process is not None and services.worker.process.poll() is None


def waiting_runs(local: stack.Stack) -> set[str]:
    """The keys of process-image runs scheduled and waiting for a worker (Scheduled or Late)."""
    waiting = process_image_runs(local, state={"type": {"any_": ["SCHEDULED"]}})
    return {key for run in waiting for key in keys_of(run)}


def refused_deliveries(local: stack.Stack) -> int:
    return local.log("ministack").read_text(errors="replace").count("retryable HTTP 503")


def post_event(local: stack.Stack, event: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        local.webhook_url, json=event, headers={"x-api-key": local.api_key}, timeout=30
    )
