"""A burst shares runs: several uploads in one process-images run, and what a crash does."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from deployments.local import stack
from deployments.local.samples import samples
from tests import support
from tests.e2e.conftest import (
    CRASH_MARKER,
    SETTINGS,
    aws,
    flow_runs_for,
    wait_for_final,
    wait_for_idle,
)

PHOTO = samples()["photo.jpg"]


def upload_together(local: stack.Stack, keys: list[str]) -> None:
    """Upload at once, so that the webhook gathers them into one batch."""
    s3 = aws(local, "s3")
    with ThreadPoolExecutor(len(keys)) as pool:
        list(
            pool.map(
                lambda k: s3.put_object(Bucket=SETTINGS.uploads_bucket, Key=k, Body=PHOTO), keys
            )
        )


def test_uploads_of_a_burst_share_one_run_each_image_once(local: stack.Stack) -> None:
    keys = [support.unique_key(f"burst-{i}.jpg", "batch-") for i in range(5)]
    upload_together(local, keys)

    items = [wait_for_final(local, key) for key in keys]

    assert {item["overall_processing_status"] for item in items} == {"COMPLETED"}
    runs = {key: flow_runs_for(local, key) for key in keys}
    assert all(len(found) == 1 for found in runs.values()), runs  # each image once
    assert len({found[0]["id"] for found in runs.values()}) == 1  # all in one run
    assert {item["flow_run_id"] for item in items} == {runs[keys[0]][0]["id"]}


def test_an_image_that_kills_its_process_fails_alone_and_the_others_complete(
    local: stack.Stack,
) -> None:
    wait_for_idle(local)
    good = [support.unique_key(f"good-{i}.jpg", "batch-") for i in range(3)]
    bad = support.unique_key(f"{CRASH_MARKER}.jpg", "batch-")
    upload_together(local, [*good, bad])

    failed = wait_for_final(local, bad)
    done = [wait_for_final(local, key) for key in good]

    # Nobody acted: the crashed batch's hook ran the images again, the bad one alone.
    assert (failed["overall_processing_status"], failed["error_type"]) == ("FAILED", "Crashed")
    # The step Prefect last heard of: a SIGKILL can take the claim's Completed event with it.
    assert failed["failed_step"] in ("claim-record", "validate")
    assert {item["overall_processing_status"] for item in done} == {"COMPLETED"}
    first_runs = {key: min(flow_runs_for(local, key), key=lambda r: r["created"]) for key in good}
    crashed = {run["id"] for run in first_runs.values()}
    assert len(crashed) == 1, "the good images shared the bad one's first run"
    [bad_first] = [r for r in flow_runs_for(local, bad) if r["id"] in crashed]
    assert bad_first["state_type"] == "CRASHED"
