"""What a run leaves in the Prefect UI: a one-line reason for a rejected upload (no
traceback), a report artifact for every run, the thumbnail inline on success.

Against MiniStack and a real (temporary) Prefect server; the artifacts and the state are
read back from the Prefect API, and the inline thumbnail is fetched over HTTP.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from botocore.exceptions import ClientError
from PIL import Image
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
from prefect.client.schemas.objects import StateType
from prefect.exceptions import PrefectHTTPStatusError

import tasks.report
from deployments.local.processes import wait_until
from flows.process_images import process_images
from image_pipeline import report
from image_pipeline.records import read_item
from image_pipeline.settings import get_settings
from tests import images
from tests.flows.runner import run_process_image
from tests.support import task_runs, unique_key

pytestmark = pytest.mark.usefixtures("prefect_server", "aws_stack")

INLINE_IMAGE = re.compile(r"!\[[^\]]*\]\((?P<url>[^)\s]+)\)")


def artifacts_of(state: Any) -> list[Any]:
    """The run's Markdown artifacts (Prefect may add a result link of its own)."""
    with get_client(sync_client=True) as prefect:
        found = prefect.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id])
            )
        )
    return [artifact for artifact in found if artifact.type == "markdown"]


def process(key: str, data: bytes, upload: Callable[[str, bytes], str]) -> Any:
    etag = upload(key, data)
    return run_process_image(get_settings().uploads_bucket, key, etag, return_state=True)


def tracebacks(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.exc_info and r.exc_info[0] is not None]


def test_a_rejected_upload_ends_failed_with_one_line_and_no_traceback(
    upload: Callable[[str, bytes], str], caplog: pytest.LogCaptureFixture
) -> None:
    key = unique_key("not-an-image.jpg")
    with caplog.at_level(logging.INFO):
        state = process(key, images.TEXT, upload)

    assert state.is_failed()
    assert state.message.startswith("NotAnImage: The file is not an image")
    assert "\n" not in state.message
    assert tracebacks(caplog) == []
    assert "Traceback" not in caplog.text
    # The hooks still ran: the reason reached the log, the item and the notice (see
    # test_process_image for the item and the notice).
    assert "NotAnImage" in caplog.text
    [artifact] = artifacts_of(state)
    assert artifact.type == "markdown"
    assert "| Failed step | validate |" in artifact.data
    assert "| Error type | NotAnImage |" in artifact.data
    assert "The file is not an image" in artifact.data


def test_an_unexpected_error_keeps_its_traceback_and_leaves_a_report(
    upload: Callable[[str, bytes], str],
    configure: Callable[..., None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    configure(thumbnails_bucket="no-such-bucket")
    key = unique_key("photo.jpg")
    state = process(key, images.jpeg((320, 240)), upload)

    assert state.is_failed()
    assert any(issubclass(r.exc_info[0], ClientError) for r in tracebacks(caplog))
    [artifact] = artifacts_of(state)
    assert "| Failed step | thumbnails |" in artifact.data
    assert "| Error type | NoSuchBucket |" in artifact.data
    assert "no-such-bucket" not in artifact.data  # the sentence, not AWS's message


def test_a_success_shows_its_small_thumbnail_inline(upload: Callable[[str, bytes], str]) -> None:
    key = unique_key("wide photo#1.jpg")
    state = process(key, images.jpeg((800, 400)), upload)

    assert state.is_completed()
    [artifact] = artifacts_of(state)
    [inline] = INLINE_IMAGE.findall(artifact.data)
    assert inline.startswith(get_settings().aws_endpoint_url)  # the emulator, locally
    assert inline.endswith("/100x100.jpg")
    response = httpx.get(inline, timeout=10)  # what the UI's browser does
    assert response.status_code == 200
    assert Image.open(io.BytesIO(response.content)).size == (100, 50)
    assert "Links point at the local emulator." in artifact.data


def test_on_aws_the_links_are_presigned_and_say_when_they_expire(
    configure: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("IMAGE_PIPELINE_AWS_ENDPOINT_URL")
    configure(report_link_seconds=3600)
    uri = "s3://thumbs/thumbnails/uploads/a b.jpg/100x100.jpg"

    markdown = report.render(
        {
            "ImageKey": "uploads/a b.jpg",
            "overall_processing_status": "COMPLETED",
            "thumbnails": {"640x480": uri.replace("100x100", "640x480"), "100x100": uri},
        }
    )

    [inline] = INLINE_IMAGE.findall(markdown)
    assert inline.startswith("https://thumbs.s3.amazonaws.com/thumbnails/uploads/a%20b.jpg/")
    path, _, query = inline.partition("?")
    assert path.endswith("/100x100.jpg")
    signed = parse_qs(query)
    assert signed["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]  # SigV4: new buckets need it
    assert signed["X-Amz-Credential"][0].startswith("test/")
    assert signed["X-Amz-Expires"] == ["3600"] and signed["X-Amz-Signature"]
    assert "valid for 1 h (until " in markdown


def test_a_batch_names_its_failure_in_one_line_and_shows_every_image(
    upload: Callable[[str, bytes], str], caplog: pytest.LogCaptureFixture
) -> None:
    bucket = get_settings().uploads_bucket
    files = [("a.jpg", images.jpeg((640, 480))), ("text.jpg", images.TEXT)]
    batch = [
        {"bucket": bucket, "key": (key := unique_key(name)), "etag": upload(key, data)}
        for name, data in files
    ]

    state = process_images(batch, return_state=True)

    assert state.is_failed()
    assert state.message.startswith(
        f"1 of 2 image(s) failed: {batch[1]['key']}: NotAnImage: The file is not an image"
    )
    assert tracebacks(caplog) == []
    [markdown] = artifacts_of(state)
    [inline] = INLINE_IMAGE.findall(markdown.data)
    assert "/thumbnails/" + batch[0]["key"] in inline
    assert "NotAnImage: The file is not an image" in markdown.data
    assert "| validate |" in markdown.data


def refused_by_prefect(**_: Any) -> None:
    """What Prefect's client raises once the server has answered 503 to every retry."""
    request = httpx.Request("POST", "http://127.0.0.1/api/artifacts/")
    response = httpx.Response(503, request=request, text="Service Unavailable")
    try:
        response.raise_for_status()
    except httpx.HTTPStatusError as exc:
        raise PrefectHTTPStatusError.from_httpx_error(exc) from exc


def test_a_report_prefect_refuses_costs_the_stored_image_nothing(
    upload: Callable[[str, bytes], str],
    notifications: Callable[[], list[dict[str, Any]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The image is stored before its report: a report the Prefect API refuses leaves the
    image COMPLETED and announced as a success (not a failure), and shows as a failed
    report task run."""
    monkeypatch.setattr(tasks.report, "create_markdown_artifact", refused_by_prefect)
    key = unique_key("photo.jpg")
    state = process(key, images.jpeg((320, 240)), upload)

    assert state.is_completed()
    item = read_item(key)
    assert item is not None and item["overall_processing_status"] == "COMPLETED"
    [notice] = notifications()
    assert notice["MessageAttributes"]["processing_status"]["Value"] == "SUCCESS"

    def report_failed() -> bool:
        report_run = task_runs(state).get("report")
        return report_run is not None and report_run.state_type == StateType.FAILED

    # Raises unless the server records the report task run as Failed within 30 s.
    wait_until(report_failed, timeout=30, what="the report task run's Failed state")
