"""Moderation through the whole flow: quarantined thumbnails, the notice, the report."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from PIL import Image

from image_pipeline.aws import client
from image_pipeline.notify import MODERATION_SUBJECT, SUCCESS_SUBJECT
from image_pipeline.records import read_item
from image_pipeline.report import render
from image_pipeline.settings import get_settings
from tests import images
from tests.fakes.rekognition import FakeRekognition
from tests.flows.runner import run_process_image
from tests.support import unique_key

pytestmark = pytest.mark.usefixtures("prefect_server")

MAGENTA = images.jpeg(image=Image.new("RGB", (400, 300), (255, 0, 255)))
PHOTO = images.jpeg((400, 300))  # the test picture: no moderation labels


@pytest.fixture
def moderated(configure: Callable[..., None], fake_rekognition: FakeRekognition) -> None:
    configure(moderation="rekognition", rekognition_endpoint_url=fake_rekognition.url)


def keys_under(folder: str) -> list[str]:
    listing = client("s3").list_objects_v2(Bucket=get_settings().thumbnails_bucket, Prefix=folder)
    return sorted(obj["Key"] for obj in listing.get("Contents", []))


def process(key: str, data: bytes, upload: Callable[[str, bytes], str]) -> dict[str, Any]:
    etag = upload(key, data)
    state = run_process_image(get_settings().uploads_bucket, key, etag, return_state=True)
    assert state.is_completed(), state.message
    item = read_item(key)
    assert item is not None
    return item


@pytest.mark.usefixtures("moderated")
def test_flagged_image_is_quarantined_and_announced(upload, notifications) -> None:
    key = unique_key("flagged photo+1.jpg")
    item = process(key, MAGENTA, upload)

    assert item["moderation_status"] == "FLAGGED"
    assert [label["Name"] for label in item["moderation_labels"]] == [
        "Explicit",
        "Explicit Nudity",
    ]
    assert item["moderation_source"] == "s3"
    bucket = get_settings().thumbnails_bucket
    assert item["thumbnails"] == {
        "100x100": f"s3://{bucket}/quarantine/{key}/100x100.jpg",
        "640x480": f"s3://{bucket}/quarantine/{key}/640x480.jpg",
    }
    assert keys_under(f"thumbnails/{key}/") == []  # nothing public, not even briefly
    assert keys_under(f"quarantine/{key}/") == sorted(
        uri.split(f"{bucket}/", 1)[1] for uri in item["thumbnails"].values()
    )

    notices = {notice["Subject"]: notice for notice in notifications()}
    assert set(notices) == {SUCCESS_SUBJECT, MODERATION_SUBJECT}
    held = notices[MODERATION_SUBJECT]
    assert {name: value["Value"] for name, value in held["MessageAttributes"].items()} == {
        "processing_status": "QUARANTINED",
        "imageId": key,
        "moderation_status": "FLAGGED",
    }
    assert "Explicit Nudity" in held["Message"] and f"quarantine/{key}/" in held["Message"]

    report = render(item)
    assert "## Moderation" in report and "**FLAGGED** (thumbnails quarantined)" in report


@pytest.mark.usefixtures("moderated")
def test_clean_image_is_public_and_gets_the_success_notice_only(upload, notifications) -> None:
    key = unique_key("photo.jpg")
    item = process(key, PHOTO, upload)

    assert (item["moderation_status"], item["moderation_labels"]) == ("CLEAN", [])
    assert keys_under(f"thumbnails/{key}/") == [
        f"thumbnails/{key}/100x100.jpg",
        f"thumbnails/{key}/640x480.jpg",
    ]
    assert [notice["Subject"] for notice in notifications()] == [SUCCESS_SUBJECT]


@pytest.mark.usefixtures("moderated")
def test_a_flagged_reupload_withdraws_the_public_thumbnails_and_back(upload) -> None:
    key = unique_key("photo.jpg")
    process(key, PHOTO, upload)
    assert len(keys_under(f"thumbnails/{key}/")) == 2

    flagged = process(key, MAGENTA, upload)
    assert flagged["moderation_status"] == "FLAGGED"
    assert keys_under(f"thumbnails/{key}/") == []
    assert len(keys_under(f"quarantine/{key}/")) == 2

    clean = process(key, PHOTO, upload)
    assert clean["moderation_status"] == "CLEAN"
    assert len(keys_under(f"thumbnails/{key}/")) == 2
    assert keys_under(f"quarantine/{key}/") == []


@pytest.mark.usefixtures("moderated")
def test_a_failed_check_fails_closed(upload, notifications, fake_rekognition) -> None:
    fake_rekognition.fail_next(1, "AccessDeniedException")
    key = unique_key("photo.jpg")
    item = process(key, PHOTO, upload)

    assert item["moderation_status"] == "FAILED"
    assert "(AccessDeniedException)" in item["moderation_error"]
    assert keys_under(f"thumbnails/{key}/") == []
    assert len(keys_under(f"quarantine/{key}/")) == 2
    held = [n for n in notifications() if n["Subject"] == MODERATION_SUBJECT]
    assert [n["MessageAttributes"]["moderation_status"]["Value"] for n in held] == ["FAILED"]


def test_moderation_off_is_recorded_as_skipped(upload) -> None:
    key = unique_key("photo.jpg")
    item = process(key, MAGENTA, upload)  # the emulator's default: auto, so off

    assert item["moderation_status"] == "SKIPPED"
    assert "off" in item["moderation_skipped_reason"]
    assert len(keys_under(f"thumbnails/{key}/")) == 2


@pytest.mark.usefixtures("moderated")
def test_a_batch_run_names_its_quarantined_images_in_its_summary(upload, notifications) -> None:
    from flows.process_images import process_images

    bucket = get_settings().uploads_bucket
    keys = {"flagged": unique_key("flagged.jpg"), "clean": unique_key("photo.jpg")}
    batch = [
        {"bucket": bucket, "key": keys["flagged"], "etag": upload(keys["flagged"], MAGENTA)},
        {"bucket": bucket, "key": keys["clean"], "etag": upload(keys["clean"], PHOTO)},
    ]

    state = process_images(batch, return_state=True)

    assert state.is_completed(), state.message
    rows = {o.key: o.row() for o in state.result().outcomes}
    assert rows[keys["flagged"]]["quarantined"] == "FLAGGED"
    assert rows[keys["clean"]]["quarantined"] == ""
    held = [n for n in notifications() if n["Subject"] == MODERATION_SUBJECT]
    assert [n["MessageAttributes"]["imageId"]["Value"] for n in held] == [keys["flagged"]]
