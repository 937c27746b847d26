"""A burst shares runs: several uploads in one process-images run, and what a crash does."""

from __future__ import annotations

import re
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from deployments.local import processes, stack
from deployments.local.processes import wait_until
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
    # The step Prefect last heard of. A SIGKILL takes the task-run events still in the
    # process's buffer with it: alone in its run, the image dies before any reaches the server.
    assert failed["failed_step"] in ("claim-record", "validate", "flow")
    assert {item["overall_processing_status"] for item in done} == {"COMPLETED"}
    first_runs = {key: min(flow_runs_for(local, key), key=lambda r: r["created"]) for key in good}
    crashed = {run["id"] for run in first_runs.values()}
    assert len(crashed) == 1, "the good images shared the bad one's first run"
    [bad_first] = [r for r in flow_runs_for(local, bad) if r["id"] in crashed]
    assert bad_first["state_type"] == "CRASHED"


def submitted_by(log: Path) -> set[str]:
    """The flow runs a worker submitted, from its log."""
    return set(re.findall(r"submitting flow run '([0-9a-f-]{36})'", log.read_text()))


def test_two_workers_on_one_pool_share_a_burst_and_process_nothing_twice(
    services: stack.Running,
) -> None:
    local = services.stack
    wait_for_idle(local)
    waves = [
        [support.unique_key(f"w{wave}-{i}.jpg", "two-") for i in range(3)] for wave in range(6)
    ]
    port = processes.free_port()
    args = [sys.executable, "-m", "prefect", "worker", "start", "--pool", stack.WORK_POOL]
    args += ["--type", stack.WORKER_TYPE, "--limit", "1", "--with-healthcheck"]
    health = f"http://127.0.0.1:{port}/health"
    second = stack.Service(
        local, "worker-2", args, health, {"PREFECT_WORKER_WEBSERVER_PORT": str(port)}
    )
    try:
        with services.worker.stopped():  # the burst waits as Scheduled runs
            for keys in waves:  # each wave its own batch: the next waits for its run
                upload_together(local, keys)
                wait_until(
                    lambda k=keys: all(flow_runs_for(local, key) for key in k),
                    timeout=60,
                    what="a run for the wave",
                )
            second.start()  # one run at a time: the first worker, back, takes the rest
            wait_until(
                lambda: submitted_by(local.log("worker-2")),
                timeout=60,
                what="the second worker to take a run",
            )
        items = [wait_for_final(local, key) for keys in waves for key in keys]
    finally:
        second.stop()

    assert {item["overall_processing_status"] for item in items} == {"COMPLETED"}
    assert {item["attempts"] for item in items} == {1}  # each image claimed once
    runs = {run["id"] for keys in waves for key in keys for run in flow_runs_for(local, key)}
    assert len(runs) == len(waves)  # one run per batch, none started twice
    by_first, by_second = submitted_by(local.log("worker")), submitted_by(local.log("worker-2"))
    assert runs & by_first and runs & by_second  # both workers did part of the burst
    assert not runs & by_first & by_second
