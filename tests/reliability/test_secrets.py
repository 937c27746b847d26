"""Secrets never reach logs, artifacts, Prefect's records, items or notices.

A run with a distinctive AWS secret key and webhook key in its environment, one image that
completes and one that fails; then every log record (all loggers, DEBUG), the flow runs,
task runs, logs and artifacts as the Prefect API returns them, the items and the notices
are searched for either secret.
"""

from __future__ import annotations

import json
import logging
import uuid

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterId,
)

from image_pipeline.aws import client
from tests import images
from tests.reliability.conftest import Notices, run, run_logs, unique_key, wait_until

pytestmark = pytest.mark.usefixtures("prefect_server", "aws_stack")


def test_secrets_appear_nowhere(monkeypatch, configure, caplog, notices: Notices) -> None:
    aws_secret = f"AwsSecret{uuid.uuid4().hex}"
    webhook_key = f"WebhookKey{uuid.uuid4().hex}"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", aws_secret)
    configure(webhook_api_key=webhook_key)
    good, bad = unique_key("secret-good.jpg"), unique_key("secret-bad.jpg")

    # Every logger at DEBUG: the root (ours, botocore) and prefect, which sets its own level.
    with caplog.at_level(logging.DEBUG), caplog.at_level(logging.DEBUG, logger="prefect"):
        good_state, good_item = run(good, images.jpeg((320, 240), make="Cam"))
        bad_state, bad_item = run(bad, images.TEXT)
    assert good_state.is_completed() and bad_state.is_failed()
    # The secret was in play: the clients signed the requests with it.
    assert client("s3")._request_signer._credentials.get_frozen_credentials().secret_key == (
        aws_secret
    )

    run_ids = [s.state_details.flow_run_id for s in (good_state, bad_state)]
    with get_client(sync_client=True) as prefect:
        flow_runs = prefect.read_flow_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=run_ids))
        )
        task_runs = prefect.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=run_ids))
        )
        artifacts = prefect.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=run_ids))
        )

    def logs() -> list:
        found = run_logs(*run_ids)
        # Logs reach the API in batches: wait for the failed run's hook to be there.
        return found if any("record_failure" in log.message for log in found) else []

    api_logs = wait_until(logs, timeout=15, what="the runs' logs in the Prefect API")
    assert artifacts, "the completed run publishes its report"
    # The capture saw the runs' own logs and every library's DEBUG records.
    assert "Finished in state Completed()" in caplog.text
    assert any(r.levelno == logging.DEBUG and r.name.startswith("botocore") for r in caplog.records)
    assert any(r.levelno == logging.DEBUG and r.name.startswith("prefect") for r in caplog.records)

    everything = {
        "log records": "\n".join(
            f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records
        ),
        "captured log text": caplog.text,
        "flow runs": json.dumps([r.model_dump(mode="json") for r in flow_runs]),
        "task runs": json.dumps([r.model_dump(mode="json") for r in task_runs]),
        "artifacts": json.dumps([a.model_dump(mode="json") for a in artifacts]),
        "api logs": json.dumps([log.model_dump(mode="json") for log in api_logs]),
        "items": json.dumps([good_item, bad_item]),
        "notices": json.dumps(notices.wait_for(good, settle=False) + notices.wait_for(bad)),
    }
    for where, text in everything.items():
        assert aws_secret not in text, f"the AWS secret key leaks into {where}"
        assert webhook_key not in text, f"the webhook key leaks into {where}"
