"""A process-image run with THUMBNAILS set: crops and formats, placeholder, fingerprint, report."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from prefect import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

from image_pipeline.aws import client
from image_pipeline.records import read_item
from image_pipeline.settings import get_settings
from tests import images
from tests.flows.runner import run_process_image
from tests.support import unique_key

pytestmark = pytest.mark.usefixtures("prefect_server")


def stored(uri: str) -> tuple[Image.Image, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    obj = client("s3").get_object(Bucket=bucket, Key=key)
    return Image.open(io.BytesIO(obj["Body"].read())), obj["ContentType"]


def test_thumbnails_follow_their_crop_and_format_and_the_record_has_the_rest(
    upload, configure
) -> None:
    configure(thumbnails="100x100:cover:webp,640x480:fit:jpeg,200x200:entropy:avif")
    key = unique_key("wide photo.jpg")
    data = images.jpeg((1800, 900), image=images.picture((1800, 900), detail=True))
    etag = upload(key, data)
    copy_key = unique_key("copy.jpg")
    upload(copy_key, data)

    state = run_process_image(get_settings().uploads_bucket, key, etag, return_state=True)
    item = read_item(key)

    assert state.is_completed(), state.message
    assert item is not None and item["overall_processing_status"] == "COMPLETED"
    expected = {
        "100x100": ((100, 100), "WEBP", "image/webp", ".webp"),
        "640x480": ((640, 320), "JPEG", "image/jpeg", ".jpg"),
        "200x200": ((200, 200), "AVIF", "image/avif", ".avif"),
    }
    assert set(item["thumbnails"]) == set(expected)
    for label, (size, fmt, content_type, extension) in expected.items():
        uri = item["thumbnails"][label]
        picture, stored_type = stored(uri)
        assert (picture.size, picture.format, stored_type) == (size, fmt, content_type)
        assert uri.endswith(f"/{label}{extension}")
    assert item["thumbhash"] and item["dominant_color"].startswith("#")
    assert len(item["dhash"]) == 16 and "duplicate_of" not in item

    # The copy under another key: a duplicate of the first, found through the index.
    copy_etag = client("s3").head_object(Bucket=get_settings().uploads_bucket, Key=copy_key)
    run_process_image(get_settings().uploads_bucket, copy_key, copy_etag["ETag"].strip('"'))
    assert (read_item(copy_key) or {}).get("duplicate_of") == key

    with get_client(sync_client=True) as prefect:
        [artifact] = prefect.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id])
            )
        )
    assert f"ThumbHash: `{item['thumbhash']}`" in artifact.data
    assert f"dHash: `{item['dhash']}`" in artifact.data
    assert "/200x200.avif" in artifact.data
