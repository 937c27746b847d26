"""A failed image, its cause fixed, rerun each of the three ways a user can, on the full stack.

The fault: the thumbnails bucket is gone, so process-image fails at its thumbnails step
(NoSuchBucket, never retried); the fix: the bucket is back. The worker's environment is
fixed when the stack starts, so the fault is one that can be made and mended from outside.
Then each image is rerun one way, all three at once:

- retry: what the Prefect UI's Retry button does to the failed run (the same run again);
- reprocess: `POST /images/{key}/reprocess` on the API;
- rerun: a run of the `rerun-failed-images` deployment.

Each ends COMPLETED, with `attempts` up by one and `created_at` kept.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from deployments.local import stack
from deployments.local.processes import wait_until
from deployments.local.samples import samples
from tests.e2e.conftest import SETTINGS, aws, flow_runs_for

WAYS = ("retry", "reprocess", "rerun")


@pytest.fixture
def recreate_thumbnails_bucket(local: stack.Stack) -> Iterator[Callable[[], None]]:
    """Deletes the thumbnails bucket; calling the fixture's value puts it back (the fix)."""
    s3 = aws(local, "s3")
    bucket = SETTINGS.thumbnails_bucket
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            s3.delete_object(Bucket=bucket, Key=obj["Key"])
    s3.delete_bucket(Bucket=bucket)

    def fix() -> None:
        s3.create_bucket(Bucket=bucket)

    try:
        yield fix
    finally:  # whatever happened, the tests after this one find the bucket
        with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
            fix()


def prefect(local: stack.Stack, method: str, path: str, **kwargs: Any) -> Any:
    response = httpx.request(method, f"{local.prefect_url}/api{path}", timeout=10, **kwargs)
    response.raise_for_status()
    return response.json()


def wait_for_status(local: stack.Stack, folder: str, wanted: str, count: int) -> dict[str, dict]:
    """The items under `folder` once `count` of them have the status `wanted`."""
    items: dict[str, dict] = {}

    def all_there() -> bool:
        # One listing per poll rather than one read per key: the stack shares two cores.
        response = httpx.get(
            f"{local.api_url}/images",
            params={"status": wanted, "key_prefix": folder, "limit": count},
            headers=local.operator_headers,
            timeout=10,
        )
        response.raise_for_status()
        items.update({item["ImageKey"]: item for item in response.json()["items"]})
        return len(items) == count

    wait_until(all_there, timeout=120, what=f"{count} images under {folder} to be {wanted}")
    return items


# --- The three ways ----------------------------------------------------------------------------


def retry_like_the_ui(local: stack.Stack, flow_run_id: str) -> None:
    """The Retry button (Prefect 3.9's UI): the same run back to Scheduled, forced."""
    body = {
        "state": {"type": "SCHEDULED", "name": "AwaitingRetry", "message": "Retry from the UI"},
        "force": True,
    }
    result = prefect(local, "POST", f"/flow_runs/{flow_run_id}/set_state", json=body)
    assert result["status"] == "ACCEPT", result


def reprocess(local: stack.Stack, key: str) -> str:
    response = httpx.post(
        f"{local.api_url}/images/{quote(key, safe='/')}/reprocess",
        headers=local.operator_headers,
        timeout=30,
    )
    assert response.status_code == 202, response.text
    return response.json()["flow_run_id"]


def run_rerun_failed_images(local: stack.Stack, key_prefix: str) -> str:
    """What `prefect deployment run rerun-failed-images/rerun-failed-images -p ...` does."""
    deployment = prefect(local, "GET", "/deployments/name/rerun-failed-images/rerun-failed-images")
    run = prefect(
        local,
        "POST",
        f"/deployments/{deployment['id']}/create_flow_run",
        json={"parameters": {"key_prefix": key_prefix}},
    )
    return run["id"]


def test_a_fixed_failure_reruns_three_ways(
    local: stack.Stack, recreate_thumbnails_bucket: Callable[[], None]
) -> None:
    folder = f"uploads/three-ways-{uuid.uuid4().hex[:6]}/"
    keys = {way: f"{folder}{way}/photo é+1.jpg" for way in WAYS}
    s3 = aws(local, "s3")
    for count, key in enumerate(keys.values(), start=1):
        s3.put_object(Bucket=SETTINGS.uploads_bucket, Key=key, Body=samples()["photo.jpg"])
        # One upload at a time, each in a run of its own: each way reruns its own failure.
        wait_for_status(local, folder, "FAILED", count)

    failed = wait_for_status(local, folder, "FAILED", len(keys))
    for item in failed.values():
        assert (item["error_type"], item["failed_step"]) == ("NoSuchBucket", "thumbnails")
        assert item["attempts"] == 1
    first_run = {way: failed[key]["flow_run_id"] for way, key in keys.items()}
    wait_until(
        lambda: all(
            prefect(local, "GET", f"/flow_runs/{run_id}")["state_type"] == "FAILED"
            for run_id in first_run.values()
        ),
        timeout=30,
        what="the failed runs to be final",
    )

    recreate_thumbnails_bucket()  # the fix
    retry_like_the_ui(local, first_run["retry"])
    reprocess_run = reprocess(local, keys["reprocess"])
    rerun_flow_run = run_rerun_failed_images(local, key_prefix=f"{folder}rerun/")

    done = wait_for_status(local, folder, "COMPLETED", len(keys))
    for way, key in keys.items():
        item, before = done[key], failed[key]
        assert item["attempts"] == before["attempts"] + 1, way
        assert (item["created_at"], item["created_at_iso"]) == (
            before["created_at"],
            before["created_at_iso"],
        ), way
        assert item["etag"] == before["etag"], way
        assert "error_type" not in item and len(item["thumbnails"]) == 2, way

    # retry: the very run that failed ran again, with its parameters unchanged.
    retried = prefect(local, "GET", f"/flow_runs/{first_run['retry']}")
    assert done[keys["retry"]]["flow_run_id"] == first_run["retry"]
    assert retried["state_type"] == "COMPLETED" and retried["run_count"] == 2
    [image] = retried["parameters"]["images"]  # the upload's batch: it came alone
    assert image["etag"] == failed[keys["retry"]]["etag"]
    assert [run["id"] for run in flow_runs_for(local, keys["retry"])] == [first_run["retry"]]

    # reprocess: a new run, for the current version of the object.
    assert done[keys["reprocess"]]["flow_run_id"] == reprocess_run
    started = prefect(local, "GET", f"/flow_runs/{reprocess_run}")
    assert started["parameters"]["etag"] == failed[keys["reprocess"]]["etag"]

    # rerun-failed-images: it started one process-image run, which did the work.
    rerun_run = done[keys["rerun"]]["flow_run_id"]
    assert rerun_run not in (first_run["rerun"], reprocess_run)
    assert "rerun" in prefect(local, "GET", f"/flow_runs/{rerun_run}")["tags"]
    wait_until(
        lambda: prefect(local, "GET", f"/flow_runs/{rerun_flow_run}")["state_type"] == "COMPLETED",
        timeout=30,
        what="rerun-failed-images to complete",
    )
