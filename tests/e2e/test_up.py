"""What `make up` does on the way, on the shared local stack: progress lines for each
phase, samples uploaded only when not already there and processed, and the polling
that tells a stale record from the new upload's by its ETag."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx

from deployments.local import stack
from deployments.local.processes import wait_until
from deployments.local.samples import samples
from deployments.local.up import content_etag, upload_samples
from tests.e2e.conftest import (
    SETTINGS,
    START_LINES,
    aws,
    flow_runs_for,
    notices_for,
    status,
    wait_for_final,
)

SAMPLES = samples()
FILES = {name: SAMPLES[name] for name in ("photo.jpg", "not-an-image.jpg")}


def test_each_phase_of_the_start_printed_a_line_at_its_start_and_end(local) -> None:
    phases = [
        "start MiniStack (AWS emulator)",
        "start PostgreSQL",
        "start the Prefect server",
        "provision the AWS resources",
        "deploy the flows",
        "start the worker",
        "start the API",
    ]
    expected: list[str] = []
    for name in phases:
        expected += [f"==> {name} ...", f"<== {name}: done in"]
    assert len(START_LINES) == len(expected), START_LINES
    for line, start in zip(START_LINES, expected, strict=True):
        assert line.startswith(start), (line, start)
        if start.startswith("<=="):
            assert re.fullmatch(r".*: done in \d+\.\d s", line), line


def test_a_restart_uploads_nothing_already_processed_and_sends_no_notice(
    local: stack.Stack, notices, capsys
) -> None:
    prefix = f"uploads/samples-{uuid.uuid4().hex[:6]}/"
    s3, bucket = aws(local, "s3"), SETTINGS.uploads_bucket
    keys = [prefix + name for name in FILES]

    first = upload_samples(local, s3, bucket, prefix, FILES)
    assert [(row[0], row[1], row[2]) for row in first] == [
        (keys[0], "COMPLETED", "this start"),
        (keys[1], "FAILED", "this start"),
    ]
    wait_until(
        lambda: all(notices_for(notices, key) for key in keys), timeout=30, what="two notices"
    )
    before = {key: status(local, key) for key in keys}
    runs_before = {key: len(flow_runs_for(local, key)) for key in keys}
    notices_before = len(notices())

    second = upload_samples(local, s3, bucket, prefix, FILES)  # as a second `make up` does

    assert [(row[0], row[1], row[2]) for row in second] == [
        (keys[0], "COMPLETED", "earlier"),
        (keys[1], "FAILED", "earlier"),
    ]
    assert "Uploaded 0 sample image(s)" in capsys.readouterr().out
    # A barrier: an upload after the restart, processed and announced, so that a run or a
    # notice the restart had caused would have come by now.
    barrier = prefix + "barrier.png"
    s3.put_object(Bucket=bucket, Key=barrier, Body=SAMPLES["logo.png"])
    wait_for_final(local, barrier)
    wait_until(lambda: notices_for(notices, barrier), timeout=30, what="the barrier's notice")
    assert {key: status(local, key) for key in keys} == before  # attempts, updated_at
    assert {key: len(flow_runs_for(local, key)) for key in keys} == runs_before
    assert [n for n in notices()[notices_before:] if n not in notices_for(notices, barrier)] == []


def test_a_changed_sample_is_uploaded_again_and_its_row_is_the_new_run(local) -> None:
    prefix = f"uploads/samples-{uuid.uuid4().hex[:6]}/"
    s3, bucket = aws(local, "s3"), SETTINGS.uploads_bucket
    key = prefix + "photo.jpg"
    upload_samples(local, s3, bucket, prefix, {"photo.jpg": SAMPLES["not-an-image.jpg"]})
    assert status(local, key)["overall_processing_status"] == "FAILED"

    [row] = upload_samples(local, s3, bucket, prefix, {"photo.jpg": SAMPLES["photo.jpg"]})

    assert row[:3] == (key, "COMPLETED", "this start")  # never the old FAILED record
    item = status(local, key)
    assert item["etag"] == content_etag(SAMPLES["photo.jpg"]) and item["attempts"] == 2


def poll_for_the_uploads_result(local: stack.Stack, key: str, etag: str) -> list[dict[str, Any]]:
    """The README's polling loop: stop only on a final record of this very upload."""
    seen: list[dict[str, Any]] = []

    def final() -> bool:
        response = httpx.get(
            f"{local.api_url}/images/{key}/status", headers=local.operator_headers, timeout=5
        )
        item = response.json() if response.status_code == 200 else {}
        seen.append(item)
        return item.get("etag") == etag and item.get("overall_processing_status") in (
            "COMPLETED",
            "FAILED",
        )

    wait_until(final, timeout=120, what=f"the record of {key} at ETag {etag}")
    return seen


def test_a_stale_record_is_told_apart_by_its_etag(local: stack.Stack) -> None:
    s3, bucket = aws(local, "s3"), SETTINGS.uploads_bucket
    key = f"uploads/stale-{uuid.uuid4().hex[:6]}/photo.jpg"
    old_etag = s3.put_object(Bucket=bucket, Key=key, Body=SAMPLES["not-an-image.jpg"])["ETag"]
    assert wait_for_final(local, key)["overall_processing_status"] == "FAILED"

    new_etag = s3.put_object(Bucket=bucket, Key=key, Body=SAMPLES["photo.jpg"])["ETag"]
    seen = poll_for_the_uploads_result(local, key, new_etag.strip('"'))

    # Right after the upload the status route still describes the old version, and says so.
    assert seen[0]["etag"] == old_etag.strip('"') != new_etag.strip('"')
    assert seen[-1]["overall_processing_status"] == "COMPLETED"
    assert seen[-1]["etag"] == new_etag.strip('"')
