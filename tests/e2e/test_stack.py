"""The product as users run it: upload to S3, watch the status API.

Uses the whole local stack (MiniStack, Prefect server, worker, API) on free ports, shared
by the e2e tests (conftest.py), uploads with boto3, and waits on conditions with deadlines.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from deployments.local import stack
from deployments.local.processes import wait_until
from deployments.local.samples import samples
from tests.e2e.conftest import SETTINGS, aws, flow_runs_for, wait_for_final

SAMPLES = samples()
EXPECTED = {
    "photo.jpg": "COMPLETED",
    "phone photo+rotated.jpg": "COMPLETED",
    "logo.png": "COMPLETED",
    "not-an-image.jpg": "FAILED",
    "truncated.jpg": "FAILED",
}


def test_uploads_end_with_their_final_status_thumbnails_and_one_notice(local, notices) -> None:
    folder = f"uploads/e2e-{uuid.uuid4().hex[:6]}/"
    s3 = aws(local, "s3")
    for name in EXPECTED:
        s3.put_object(Bucket=SETTINGS.uploads_bucket, Key=folder + name, Body=SAMPLES[name])

    items = {name: wait_for_final(local, folder + name) for name in EXPECTED}

    for name, expected in EXPECTED.items():
        item = items[name]
        assert item["overall_processing_status"] == expected, item
        listing = s3.list_objects_v2(
            Bucket=SETTINGS.thumbnails_bucket, Prefix=f"thumbnails/{folder}{name}/"
        )
        thumbnails = [obj["Key"] for obj in listing.get("Contents", [])]
        if expected == "COMPLETED":
            assert len(thumbnails) == 2
        else:
            assert thumbnails == [] and item["error_type"] and item["error_message"]
    wait_until(
        lambda: (
            {n["MessageAttributes"]["imageId"]["Value"] for n in notices()}
            >= {folder + name for name in EXPECTED}
        ),
        timeout=30,
        what="a notice per image",
    )
    per_key = [n["MessageAttributes"]["imageId"]["Value"] for n in notices()]
    assert sorted(k for k in per_key if k.startswith(folder)) == sorted(
        folder + name for name in EXPECTED
    )


def eventbridge_event(key: str, etag: str) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": "000000000000",
        "time": "2026-11-27T12:00:00Z",
        "region": "us-east-1",
        "resources": [f"arn:aws:s3:::{SETTINGS.uploads_bucket}"],
        "detail": {
            "version": "0",
            "bucket": {"name": SETTINGS.uploads_bucket},
            "object": {"key": key, "size": 1, "etag": etag, "sequencer": "00AA"},
            "reason": "PutObject",
        },
    }


@pytest.fixture
def rule_paused(local: stack.Stack) -> Iterator[None]:
    """EventBridge stops delivering, so the test alone decides what reaches the webhook."""
    events = aws(local, "events")
    names = [rule["Name"] for rule in events.list_rules()["Rules"]]
    for name in names:
        events.disable_rule(Name=name)
    try:
        yield
    finally:
        for name in names:
            events.enable_rule(Name=name)


def test_the_same_event_delivered_twice_starts_one_run(local, rule_paused) -> None:
    key = f"uploads/dup-{uuid.uuid4().hex[:6]}.jpg"
    etag = (
        aws(local, "s3")
        .put_object(Bucket=SETTINGS.uploads_bucket, Key=key, Body=SAMPLES["photo.jpg"])["ETag"]
        .strip('"')
    )
    event = eventbridge_event(key, etag)
    headers = {"x-api-key": local.api_key}

    first = httpx.post(local.webhook_url, json=event, headers=headers, timeout=10)
    redelivery = {**event, "id": str(uuid.uuid4())}  # EventBridge retries get new ids
    second = httpx.post(local.webhook_url, json=redelivery, headers=headers, timeout=10)

    assert first.status_code == second.status_code == 202
    assert first.json()["event_id"] == second.json()["event_id"]
    assert wait_for_final(local, key)["overall_processing_status"] == "COMPLETED"
    assert len(flow_runs_for(local, key)) == 1


def test_webhook_refuses_requests_without_the_key_or_with_garbage(local) -> None:
    event = eventbridge_event("uploads/x.jpg", "abc")
    assert httpx.post(local.webhook_url, json=event, timeout=5).status_code == 401
    wrong = httpx.post(local.webhook_url, json=event, headers={"x-api-key": "no"}, timeout=5)
    assert wrong.status_code == 401
    garbage = httpx.post(
        local.webhook_url,
        content=b"{not json",
        timeout=5,
        headers={"x-api-key": local.api_key, "content-type": "application/json"},
    )
    assert garbage.status_code == 422 and garbage.json()["message"]


def test_each_key_opens_only_its_own_routes(local) -> None:
    """The stack hands the API both keys, and neither opens the other's routes."""
    listing = f"{local.api_url}/images?status=FAILED&limit=1"
    for headers in ({}, {"x-api-key": local.api_key}, {"Authorization": f"Bearer {local.api_key}"}):
        assert httpx.get(listing, headers=headers, timeout=5).status_code == 401
    assert httpx.get(listing, headers=local.operator_headers, timeout=5).status_code == 200
    event = eventbridge_event("uploads/x.jpg", "abc")
    refused = httpx.post(
        local.webhook_url, json=event, headers={"x-api-key": local.operator_key}, timeout=5
    )
    assert refused.status_code == 401
    # The original API's route stays open: an unknown image is a 404, not a 401.
    original = httpx.get(f"{local.api_url}/images/uploads/{uuid.uuid4().hex}.jpg/status")
    assert original.status_code == 404
