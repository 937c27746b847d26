"""What users are told of a failure, and what only the run's log keeps.

A step is refused with a real AWS AccessDenied whose message names the worker's role ARN and
the account id, as AWS's own do. The item, the status API and the SNS notice say what kind
of error it was (`error_type` AccessDenied and a sentence chosen by that type), never that
text; the flow run's log in Prefect has it in full, for operators.
"""

from __future__ import annotations

import json
import uuid
from urllib.parse import quote

import httpx
import pytest

from image_pipeline.settings import get_settings
from tests import images
from tests.api.conftest import bearer, serve
from tests.reliability.conftest import Notices, put_upload, run, run_logs, wait_until
from tests.reliability.faults import fail_next

pytestmark = pytest.mark.usefixtures("prefect_server", "aws_stack")

ACCOUNT = "123456789012"
ROLE = f"arn:aws:sts::{ACCOUNT}:assumed-role/image-pipeline-worker/i-0abc123"
DENIED = (
    "The pipeline is not allowed to read or write a resource it needs (AccessDenied); "
    "an operator can find the details in the run's log."
)


def leaks(text: str) -> list[str]:
    """The parts of AWS's message that `text` gives away."""
    parts = (ACCOUNT, "arn:aws:sts", "assumed-role", "not authorized")
    return [part for part in parts if part in text]


def test_access_denied_is_told_by_its_type_and_logged_in_full(
    notices: Notices, operator_key: str
) -> None:
    name = f"rel-denied-{uuid.uuid4().hex[:8]}.jpg"  # directly under uploads/: the original route
    key = f"uploads/{name}"
    bucket = get_settings().uploads_bucket
    raw = (
        f"User: {ROLE} is not authorized to perform: s3:GetObject on resource: "
        f'"arn:aws:s3:::{bucket}/{key}" because no identity-based policy allows the '
        "s3:GetObject action"
    )
    etag = put_upload(key, images.jpeg((320, 240)))
    with fail_next("s3", 1, "GetObject", code="AccessDenied", message=raw, status=403) as fault:
        state, item = run(key, etag=etag)

    assert fault.failed == 1  # refused once: a missing permission is not retried
    assert state.is_failed(), state
    assert item and item["overall_processing_status"] == "FAILED"
    assert (item["error_type"], item["failed_step"]) == ("AccessDenied", "validate")
    assert item["error_message"] == DENIED
    assert item.get("validation_status") != "INVALID"  # nothing is wrong with the image
    [notice] = notices.wait_for(key)
    assert "Error: AccessDenied" in notice["Message"] and DENIED in notice["Message"]

    operator = bearer(operator_key)
    with serve() as api:
        answers = {
            "the original route": httpx.get(f"{api}/images/uploads/{name}/status"),
            "the status route": httpx.get(
                f"{api}/images/{quote(key, safe='/')}/status", headers=operator
            ),
            "the listing": httpx.get(
                f"{api}/images",
                params={"status": "FAILED", "key_prefix": key},
                headers=operator,
            ),
        }
    for where, response in answers.items():
        assert response.status_code == 200, (where, response.text)
    listed = answers["the listing"].json()["items"]
    for record in [answers["the original route"].json(), answers["the status route"].json()]:
        assert (record["ImageKey"], record["error_type"]) == (key, "AccessDenied")
        assert record["error_message"] == DENIED
    assert [(r["ImageKey"], r["error_message"]) for r in listed] == [(key, DENIED)]
    shown = {where: response.text for where, response in answers.items()}
    shown |= {"the item": json.dumps(item), "the notice": json.dumps(notice)}
    for where, text in shown.items():
        assert leaks(text) == [], f"AWS's message leaks into {where}"

    # The operator's side: the failure hook wrote AWS's message, in full, to the run's log.
    run_id = state.state_details.flow_run_id

    def hook_line() -> list[str]:
        return [
            log.message for log in run_logs(run_id) if log.message.startswith("The run failed:")
        ]

    [line] = wait_until(hook_line, timeout=15, what="the hook's line in the run's log")
    assert line.startswith("The run failed: AccessDenied: An error occurred (AccessDenied)")
    assert raw in line
