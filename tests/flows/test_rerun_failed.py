"""rerun-failed-images against MiniStack and a real (temporary) Prefect server.

process-image is deployed on that server but no worker runs, so every run the rerun
starts stays Scheduled: the tests read them back from the server.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
)
from prefect.client.schemas.objects import FlowRun
from prefect.exceptions import ParameterTypeError
from prefect.states import Cancelled

from deployments.local.samples import samples
from flows.process_image import process_image
from flows.rerun_failed import rerun_failed_images
from image_pipeline.aws import client
from image_pipeline.records import read_item, to_dynamo
from image_pipeline.settings import get_settings
from tests.flows.artifacts import artifacts_of, progress_logged
from tests.flows.runner import run_process_image

pytestmark = pytest.mark.usefixtures("prefect_server", "aws_stack")

NOW = 1_700_000_000


@pytest.fixture(scope="module")
def deployment(prefect_server: None) -> UUID:
    """process-image registered on the test server, as `prefect deploy` would name it."""
    return process_image.to_deployment(name="process-image").apply()


@pytest.fixture
def prefix() -> str:
    return f"uploads/rerun-{uuid.uuid4().hex[:8]}/"


def put(key: str, status: str = "FAILED", updated_at: int = NOW, **attributes: Any) -> None:
    item = {
        "ImageKey": key,
        "s3_bucket_original": "bucket-of-" + key.split("/")[1],
        "s3_key_original": key,
        "overall_processing_status": status,
        "updated_at": updated_at,
        "created_at": updated_at - 60,
        "etag": "0" * 32,
        "attempts": 1,
        **attributes,
    }
    if status == "FAILED":
        item = {
            "error_type": "CorruptImage",
            "error_message": "image file is truncated",
            "failed_step": "validate",
            **item,
        }
    client("dynamodb").put_item(
        TableName=get_settings().table_name,
        Item={name: to_dynamo(value) for name, value in item.items()},
    )


@pytest.fixture
def failed(prefix: str) -> list[str]:
    """Three FAILED images (newest first) and two that are not, under `prefix`."""
    keys = [f"{prefix}{name}" for name in ("c.jpg", "b b+%.jpg", "a.png")]
    for age, key in enumerate(keys):
        put(key, updated_at=NOW - age * 10)
    put(f"{prefix}done.jpg", status="COMPLETED")
    put(f"{prefix}busy.jpg", status="PROCESSING")
    return keys


def runs_for(deployment: UUID, keys: list[str]) -> dict[str, list[FlowRun]]:
    with get_client(sync_client=True) as prefect:
        runs = prefect.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment])),
            limit=200,
        )
    return {key: [run for run in runs if run.parameters.get("key") == key] for key in keys}


def test_dry_run_lists_failed_images_newest_first_and_starts_nothing(
    deployment: UUID, failed: list[str], prefix: str
) -> None:
    state = rerun_failed_images(key_prefix=prefix, dry_run=True, return_state=True)
    summary = state.result()

    assert summary.dry_run and summary.found == 3 and not summary.more_match
    assert summary.would_start == failed
    assert summary.started == [] and summary.skipped_running == []
    assert {(o.error_type, o.failed_step) for o in summary.outcomes} == {
        ("CorruptImage", "validate")
    }
    assert all(runs == [] for runs in runs_for(deployment, failed).values())
    [artifact] = artifacts_of(state.state_details.flow_run_id, "table")
    assert artifact.type == "table" and artifact.key == "rerun-failed-images"
    assert all(key in str(artifact.data) for key in failed)
    assert "Dry run" in artifact.description
    [progress] = artifacts_of(state.state_details.flow_run_id, "progress")
    assert progress.data == 100 and progress.description.endswith("3 of 3 images done, 0 left.")


def test_filters_by_error_type_time_and_limit(deployment: UUID, prefix: str) -> None:
    put(f"{prefix}old.jpg", updated_at=NOW - 100, error_type="NotAnImage")
    put(f"{prefix}mid.jpg", updated_at=NOW - 50, error_type="CorruptImage")
    put(f"{prefix}new.jpg", updated_at=NOW, error_type="NotAnImage")

    def would_start(**parameters: Any) -> list[str]:
        return rerun_failed_images(key_prefix=prefix, dry_run=True, **parameters).would_start

    assert would_start(error_type="NotAnImage") == [f"{prefix}new.jpg", f"{prefix}old.jpg"]
    assert would_start(
        failed_after=datetime.fromtimestamp(NOW - 50, UTC),  # inclusive
        failed_before=datetime.fromtimestamp(NOW - 1, UTC).replace(tzinfo=None),  # UTC
    ) == [f"{prefix}mid.jpg"]
    limited = rerun_failed_images(key_prefix=prefix, dry_run=True, limit=2)
    assert limited.would_start == [f"{prefix}new.jpg", f"{prefix}mid.jpg"]
    assert limited.more_match


def test_starts_one_scheduled_run_per_image_and_never_a_second(
    deployment: UUID, failed: list[str], prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        state = rerun_failed_images(key_prefix=prefix, return_state=True)
    summary = state.result()

    assert summary.started == failed
    # Progress, run by run, in the log and in the progress artifact the server keeps.
    assert progress_logged(caplog, "Failed images") == [(0, 3), (1, 2), (2, 1), (3, 0)]
    [progress] = artifacts_of(state.state_details.flow_run_id, "progress")
    assert progress.key == "rerun-failed-images-progress" and progress.data == 100
    assert progress.description.endswith(": 3 of 3 images done, 0 left.")
    caplog.clear()
    runs = runs_for(deployment, [*failed, f"{prefix}done.jpg", f"{prefix}busy.jpg"])
    for key in failed:
        [run] = runs[key]
        assert run.state and run.state.is_scheduled()
        assert run.parameters == {
            "bucket": "bucket-of-" + prefix.split("/")[1],
            "key": key,
            "etag": None,
        }
        assert run.name == key
        assert run.idempotency_key == f"rerun-{key}-{read_item(key)['updated_at']}"
    assert runs[f"{prefix}done.jpg"] == runs[f"{prefix}busy.jpg"] == []

    again = rerun_failed_images(key_prefix=prefix)

    assert again.started == [] and again.skipped_running == failed
    assert progress_logged(caplog, "Failed images") == [(0, 3), (3, 0)]  # all skipped: done
    assert {o.flow_run.id for o in again.outcomes} == {str(runs[k][0].id) for k in failed}
    assert all(len(runs) == 1 for runs in runs_for(deployment, failed).values())


def test_a_run_started_by_the_trigger_is_left_alone(
    deployment: UUID, failed: list[str], prefix: str
) -> None:
    # The trigger's runs keep a generated name until they start: found by their parameters.
    with get_client(sync_client=True) as prefect:
        triggered = prefect.create_flow_run_from_deployment(
            deployment, parameters={"bucket": "b", "key": failed[1], "etag": "e"}
        )
    assert triggered.name != failed[1]

    summary = rerun_failed_images(key_prefix=prefix)

    assert summary.skipped_running == [failed[1]]
    assert summary.started == [failed[0], failed[2]]
    assert [run.id for run in runs_for(deployment, failed)[failed[1]]] == [triggered.id]


def test_a_failure_is_rerun_once_even_when_that_run_was_cancelled(
    deployment: UUID, failed: list[str], prefix: str
) -> None:
    rerun_failed_images(key_prefix=prefix)
    [first] = runs_for(deployment, [failed[0]])[failed[0]]
    with get_client(sync_client=True) as prefect:
        prefect.set_flow_run_state(first.id, Cancelled(), force=True)

    summary = rerun_failed_images(key_prefix=prefix)

    assert summary.skipped_rerun_before == [failed[0]]
    [outcome] = [o for o in summary.outcomes if o.key == failed[0]]
    assert outcome.flow_run and outcome.flow_run.state == "Cancelled"
    assert summary.skipped_running == failed[1:]
    assert len(runs_for(deployment, [failed[0]])[failed[0]]) == 1

    put(failed[0], updated_at=NOW + 5)  # failed again: a new failure, a new rerun
    assert rerun_failed_images(key_prefix=prefix).started == [failed[0]]


def test_an_image_that_process_image_failed_is_rerun_from_its_bucket(
    deployment: UUID, prefix: str, upload: Callable[[str, bytes], str]
) -> None:
    key = f"{prefix}not-an-image.jpg"
    upload(key, samples()["not-an-image.jpg"])
    assert run_process_image(get_settings().uploads_bucket, key, return_state=True).is_failed()

    summary = rerun_failed_images(key_prefix=prefix, error_type="NotAnImage")

    assert summary.started == [key]
    [run] = runs_for(deployment, [key])[key]
    assert run.parameters == {"bucket": get_settings().uploads_bucket, "key": key, "etag": None}


def test_limit_below_one_is_refused(deployment: UUID) -> None:
    with pytest.raises(ParameterTypeError, match="limit"):
        rerun_failed_images(limit=0, dry_run=True)
