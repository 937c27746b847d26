"""`POST /images/{key}/reprocess` over real HTTP, against MiniStack and a real (temporary)
Prefect server on which process-image is deployed. No worker runs, so every run the route
starts stays Scheduled: "in flight" for as long as the test needs."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote
from uuid import UUID

import httpx
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
from prefect.client.schemas.objects import FlowRun
from prefect.settings import (
    PREFECT_API_URL,
    PREFECT_UI_URL,
    get_current_settings,
    temporary_settings,
)
from prefect.states import Cancelled, Completed

from deployments.local.processes import free_port
from flows.process_image import process_image
from image_pipeline.aws import client
from image_pipeline.settings import get_settings
from tests.api.conftest import FakePrefect, bearer, serve
from tests.api.test_images import put_item

pytestmark = pytest.mark.usefixtures("prefect_server")

UNAUTHORIZED = {"message": "Missing or invalid operator key: send Authorization: Bearer <key>."}
PREFECT_UNAVAILABLE = {"message": "Prefect is unavailable; try again later."}


@pytest.fixture(scope="module")
def deployment(prefect_server: None) -> UUID:
    """process-image registered on the test server, as `prefect deploy` names it."""
    return process_image.to_deployment(name="process-image").apply()


@pytest.fixture
def key() -> str:
    return f"uploads/reprocess-{uuid.uuid4().hex[:8]}/photo é+%.jpg"


def upload(key: str, data: bytes = b"any bytes: the route never opens the image") -> str:
    response = client("s3").put_object(Bucket=get_settings().uploads_bucket, Key=key, Body=data)
    return response["ETag"].strip('"')


def reprocess(
    api: str, key: str, operator_key: str | None, headers: dict[str, str] | None = None
) -> httpx.Response:
    if headers is None:
        headers = bearer(operator_key) if operator_key is not None else {}
    return httpx.post(f"{api}/images/{quote(key, safe='/')}/reprocess", headers=headers, timeout=30)


def runs_of(deployment: UUID, key: str) -> list[FlowRun]:
    with get_client(sync_client=True) as prefect:
        runs = prefect.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment])),
            limit=200,
        )
    return [run for run in runs if run.parameters.get("key") == key]


def ui_base() -> str:
    return get_current_settings().api.url.removesuffix("/api")


# --- refused before anything is read -------------------------------------------------------


@pytest.mark.parametrize("sent", [None, "", "wrong"])
def test_without_the_key_it_is_401_and_nothing_starts(
    api: str, operator_key: str, deployment: UUID, key: str, sent: str | None
) -> None:
    upload(key)
    response = reprocess(api, key, sent)
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED
    assert runs_of(deployment, key) == []


def test_the_webhook_key_starts_nothing(
    api: str, webhook_key: str, operator_key: str, deployment: UUID, key: str
) -> None:
    upload(key)
    for sent in ({"x-api-key": webhook_key}, bearer(webhook_key)):  # as before, and as bearer
        response = reprocess(api, key, None, headers=sent)
        assert response.status_code == 401
        assert response.json() == UNAUTHORIZED
    assert runs_of(deployment, key) == []


def test_get_is_not_reprocess(api: str, operator_key: str, key: str) -> None:
    upload(key)  # a GET reads the (missing) item of ".../reprocess"; it starts nothing
    response = httpx.get(f"{api}/images/{quote(key)}/reprocess", headers=bearer(operator_key))
    assert response.status_code == 404
    assert response.json()["message"]


# --- nothing to reprocess ------------------------------------------------------------------


def test_a_missing_object_is_404_with_a_message(
    api: str, operator_key: str, deployment: UUID, key: str
) -> None:
    put_item(key, overall_processing_status="FAILED", s3_bucket_original="image-pipeline-uploads")
    response = reprocess(api, key, operator_key)
    assert response.status_code == 404
    bucket = get_settings().uploads_bucket
    assert response.json() == {
        "message": f"s3://{bucket}/{key} does not exist: there is nothing to reprocess."
    }
    assert runs_of(deployment, key) == []


def test_the_bucket_of_the_record_is_the_one_read(
    api: str, operator_key: str, deployment: UUID, key: str
) -> None:
    upload(key)  # in the uploads bucket, but the record names another one
    put_item(key, overall_processing_status="FAILED", s3_bucket_original="some-other-bucket")
    response = reprocess(api, key, operator_key)
    assert response.status_code == 404
    assert response.json()["message"].startswith(f"s3://some-other-bucket/{key} does not exist")


def test_a_key_outside_the_uploads_prefix_without_a_record_is_404(
    api: str, operator_key: str, deployment: UUID
) -> None:
    key = f"elsewhere/{uuid.uuid4().hex}.jpg"
    upload(key)
    response = reprocess(api, key, operator_key)
    assert response.status_code == 404
    assert response.json() == {"message": "Image details not found for the given image identifier."}
    assert runs_of(deployment, key) == []


@pytest.mark.parametrize("key", ["", "uploads/" + "é" * 600])
def test_keys_no_image_can_have_are_404(api: str, operator_key: str, key: str) -> None:
    response = reprocess(api, key, operator_key)
    assert response.status_code == 404
    assert response.json()["message"]


# --- started --------------------------------------------------------------------------------


def test_starts_a_run_for_the_current_object(
    api: str, operator_key: str, deployment: UUID, key: str
) -> None:
    upload(key, b"first version")
    put_item(key, overall_processing_status="FAILED", etag="0" * 32, attempts=1)
    etag = upload(key, b"second version")  # the run is for what is there now

    response = reprocess(api, key, operator_key)

    assert response.status_code == 202, response.text
    body = response.json()
    [run] = runs_of(deployment, key)
    assert body == {
        "flow_run_id": str(run.id),
        "ui_url": f"{ui_base()}/runs/flow-run/{run.id}",
        "bucket": get_settings().uploads_bucket,
        "key": key,
        "etag": etag,
    }
    assert run.parameters == {"bucket": get_settings().uploads_bucket, "key": key, "etag": etag}
    assert run.name == key
    assert run.deployment_id == deployment
    assert run.state is not None and run.state.is_scheduled()
    assert "reprocess" in run.tags


def test_force_starts_a_run_that_redoes_a_completed_image(
    api: str, operator_key: str, deployment: UUID, key: str
) -> None:
    etag = upload(key)
    put_item(key, overall_processing_status="COMPLETED", etag=etag, attempts=1)

    response = httpx.post(
        f"{api}/images/{quote(key, safe='/')}/reprocess?force=true",
        headers=bearer(operator_key),
        timeout=30,
    )

    assert response.status_code == 202, response.text
    [run] = runs_of(deployment, key)
    assert response.json()["flow_run_id"] == str(run.id)
    bucket = get_settings().uploads_bucket
    assert run.parameters == {"bucket": bucket, "key": key, "etag": etag, "force": True}
    # Forced or not, one run at a time.
    again = httpx.post(
        f"{api}/images/{quote(key, safe='/')}/reprocess?force=true",
        headers=bearer(operator_key),
        timeout=30,
    )
    assert again.status_code == 409


def test_force_needs_the_operator_key(
    api: str, operator_key: str, deployment: UUID, key: str
) -> None:
    upload(key)
    response = httpx.post(f"{api}/images/{quote(key, safe='/')}/reprocess?force=true")
    assert response.status_code == 401
    assert runs_of(deployment, key) == []


def test_an_object_without_a_record_under_the_prefix_is_started(
    api: str, operator_key: str, deployment: UUID, key: str
) -> None:
    # An upload whose event was lost: the object is there, the pipeline never saw it.
    etag = upload(key)
    response = reprocess(api, key, operator_key)
    assert response.status_code == 202, response.text
    [run] = runs_of(deployment, key)
    assert run.parameters["etag"] == etag


def test_the_ui_url_follows_prefect_ui_url(operator_key: str, deployment: UUID, key: str) -> None:
    upload(key)
    ui = {PREFECT_UI_URL: "https://prefect.example.com/"}
    with temporary_settings(updates=ui), serve() as api:
        body = reprocess(api, key, operator_key).json()
    assert body["ui_url"] == f"https://prefect.example.com/runs/flow-run/{body['flow_run_id']}"


# --- never two at once ------------------------------------------------------------------------


def test_a_second_request_while_the_first_run_waits_is_409(
    api: str, operator_key: str, deployment: UUID, key: str
) -> None:
    upload(key)
    first = reprocess(api, key, operator_key).json()

    response = reprocess(api, key, operator_key)

    assert response.status_code == 409
    run_id = first["flow_run_id"]
    assert response.json() == {
        "message": f"{key} is already being processed by flow run {run_id} (Scheduled).",
        "flow_run_id": run_id,
        "flow_run_state": "Scheduled",
        "ui_url": first["ui_url"],
    }
    assert [str(run.id) for run in runs_of(deployment, key)] == [run_id]


def test_a_run_the_trigger_started_is_in_the_way_too(
    api: str, operator_key: str, deployment: UUID, key: str
) -> None:
    etag = upload(key)
    with get_client(sync_client=True) as prefect:  # named by the server, like a trigger's run
        triggered = prefect.create_flow_run_from_deployment(
            deployment,
            parameters={"bucket": get_settings().uploads_bucket, "key": key, "etag": etag},
        )
    assert triggered.name != key

    response = reprocess(api, key, operator_key)

    assert response.status_code == 409
    assert response.json()["flow_run_id"] == str(triggered.id)


def test_simultaneous_requests_start_one_run(
    api: str, operator_key: str, deployment: UUID, key: str
) -> None:
    upload(key)
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda _: reprocess(api, key, operator_key), range(8)))

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [202] + [409] * 7
    [run] = runs_of(deployment, key)
    assert {response.json()["flow_run_id"] for response in responses} == {str(run.id)}


@pytest.mark.parametrize("final", [Completed, Cancelled])
def test_a_finished_run_is_not_in_the_way(
    api: str, operator_key: str, deployment: UUID, key: str, final: Any
) -> None:
    upload(key)
    first = reprocess(api, key, operator_key).json()["flow_run_id"]
    with get_client(sync_client=True) as prefect:
        prefect.set_flow_run_state(UUID(first), final(), force=True)

    again = reprocess(api, key, operator_key)

    assert again.status_code == 202
    assert again.json()["flow_run_id"] != first
    assert len(runs_of(deployment, key)) == 2


# --- Prefect trouble ---------------------------------------------------------------------------


@pytest.fixture
def uploaded(key: str) -> Iterator[str]:
    upload(key)
    yield key


def test_prefect_unreachable_is_503(operator_key: str, uploaded: str) -> None:
    closed = f"http://127.0.0.1:{free_port()}/api"
    with temporary_settings(updates={PREFECT_API_URL: closed}), serve() as api:
        response = reprocess(api, uploaded, operator_key)
    assert response.status_code == 503
    assert response.json() == PREFECT_UNAVAILABLE


def test_prefect_error_is_503(operator_key: str, uploaded: str) -> None:
    with FakePrefect(status=500) as prefect:
        updates = {PREFECT_API_URL: prefect.api_url}
        with temporary_settings(updates=updates), serve() as api:
            response = reprocess(api, uploaded, operator_key)
    assert response.status_code == 503
    assert response.json() == PREFECT_UNAVAILABLE


def test_a_missing_deployment_is_503(
    operator_key: str, uploaded: str, caplog: pytest.LogCaptureFixture
) -> None:
    with FakePrefect(status=200, body=[]) as prefect:  # no runs; GET deployment: 404
        updates = {PREFECT_API_URL: prefect.api_url}
        with temporary_settings(updates=updates), serve() as api:
            response = reprocess(api, uploaded, operator_key)
    assert response.status_code == 503
    assert response.json() == PREFECT_UNAVAILABLE
    assert "deployment 'process-image/process-image' is not on the Prefect server" in caplog.text
    assert prefect.requests[-1]["path"] == "/api/deployments/name/process-image/process-image"
