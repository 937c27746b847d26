"""The whole flow against MiniStack and a real (temporary) Prefect server."""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from PIL import Image

from deployments.local.samples import samples
from image_pipeline.aws import client
from image_pipeline.records import read_item
from image_pipeline.settings import get_settings
from tests import images
from tests.flows.runner import run_process_image
from tests.support import unique_key

pytestmark = pytest.mark.usefixtures("prefect_server")

SAMPLES = samples()
GOOD = [
    "photo.jpg",
    "phone photo+rotated.jpg",
    "logo.png",
    "animation.gif",
    "scan-cmyk.jpg",
    "picture.webp",
    "phone.heic",
]
BAD = {"not-an-image.jpg": "NotAnImage", "truncated.jpg": "CorruptImage"}


def run(key: str, data: bytes, upload: Callable[[str, bytes], str]) -> tuple[Any, dict]:
    etag = upload(key, data)
    state = run_process_image(get_settings().uploads_bucket, key, etag, return_state=True)
    item = read_item(key)
    assert item is not None, "every run leaves an item"
    return state, item


def thumbnail(uri: str) -> tuple[Image.Image, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    obj = client("s3").get_object(Bucket=bucket, Key=key)
    return Image.open(io.BytesIO(obj["Body"].read())), obj["ContentType"]


def thumbnail_keys(key: str) -> list[str]:
    listing = client("s3").list_objects_v2(
        Bucket=get_settings().thumbnails_bucket, Prefix=f"thumbnails/{key}/"
    )
    return sorted(obj["Key"] for obj in listing.get("Contents", []))


@pytest.mark.parametrize("name", GOOD)
def test_good_image_completes_with_thumbnails_and_metadata(name: str, upload) -> None:
    key = unique_key(name)
    state, item = run(key, SAMPLES[name], upload)

    assert state.is_completed(), state.message
    assert item["overall_processing_status"] == "COMPLETED"
    assert item["validation_status"] == "VALID"
    assert item["attempts"] == 1
    assert item["etag"] and item["flow_run_id"] == str(state.state_details.flow_run_id)
    assert item["created_at"] <= item["updated_at"]
    metadata = item["extracted_metadata"]
    assert metadata["filename"] == name
    assert metadata["filesize_bytes"] == len(SAMPLES[name])
    assert set(item["thumbnails"]) == {"100x100", "640x480"}
    for label, uri in item["thumbnails"].items():
        box = tuple(int(side) for side in label.split("x"))
        image, content_type = thumbnail(uri)
        assert image.width <= box[0] and image.height <= box[1]
        assert content_type == Image.MIME[image.format]
        assert uri.startswith(f"s3://{get_settings().thumbnails_bucket}/thumbnails/{key}/")
    assert item["labels_status"] == "SKIPPED"  # the emulator has no Rekognition
    assert "off" in item["labels_skipped_reason"]


def test_rotated_phone_photo_comes_out_upright(upload) -> None:
    _, item = run(unique_key("phone photo+rotated.jpg"), SAMPLES["phone photo+rotated.jpg"], upload)
    image, _ = thumbnail(item["thumbnails"]["640x480"])
    assert image.height > image.width  # stored 1600x1200 landscape with orientation 6
    assert item["extracted_metadata"]["width_pixels"] == 1600
    assert item["extracted_metadata"]["exif"]["orientation"] == 6
    # The size as shown, beside the stored one: portrait, like the thumbnail.
    metadata = item["extracted_metadata"]
    assert (metadata["display_width"], metadata["display_height"]) == (1200, 1600)
    assert image.size == (360, 480)  # 1200x1600 fitted in 640x480


GEOTAGGED = images.jpeg((320, 240), gps=(-33.8568, 151.2153), altitude=5.0, make="Apple")


def test_the_gps_position_is_not_recorded_by_default(upload) -> None:
    _, item = run(unique_key("geotagged.jpg"), GEOTAGGED, upload)
    assert item["overall_processing_status"] == "COMPLETED"
    assert item["extracted_metadata"]["exif"] == {"camera_make": "Apple"}


def test_the_gps_position_is_recorded_when_opted_in(upload, configure) -> None:
    configure(record_gps="true")
    _, item = run(unique_key("geotagged.jpg"), GEOTAGGED, upload)
    exif = item["extracted_metadata"]["exif"]
    assert exif["camera_make"] == "Apple"
    assert (exif["gps_latitude"], exif["gps_longitude"]) == (-33.8568, 151.2153)
    assert exif["gps_altitude"] == 5.0


def test_transparent_image_gets_png_thumbnails(upload) -> None:
    _, item = run(unique_key("logo.png"), SAMPLES["logo.png"], upload)
    image, content_type = thumbnail(item["thumbnails"]["100x100"])
    assert (content_type, image.mode) == ("image/png", "RGBA")
    assert item["thumbnails"]["100x100"].endswith("/100x100.png")


@pytest.mark.parametrize(("name", "error_type"), BAD.items())
def test_bad_image_fails_with_reason_and_no_thumbnails(name, error_type, upload, notifications):
    key = unique_key(name)
    state, item = run(key, SAMPLES[name], upload)

    assert state.is_failed()
    assert item["overall_processing_status"] == "FAILED"
    assert item["error_type"] == error_type
    assert item["failed_step"] == "validate"
    assert item["validation_status"] == "INVALID"
    assert item["error_message"]
    assert thumbnail_keys(key) == []
    [notice] = notifications()
    assert notice["Subject"] == "FAILURE: Image Processing Error"
    assert notice["MessageAttributes"]["processing_status"]["Value"] == "FAILURE"
    assert notice["MessageAttributes"]["imageId"]["Value"] == key
    assert notice["MessageAttributes"]["failed_step"]["Value"] == "validate"
    assert error_type in notice["Message"] and key in notice["Message"]


def test_success_notification_names_the_key(upload, notifications) -> None:
    key = unique_key("photo.jpg")
    run(key, SAMPLES["photo.jpg"], upload)
    [notice] = notifications()
    assert notice["Subject"] == "SUCCESS: Image Processing Complete"
    assert notice["MessageAttributes"]["processing_status"]["Value"] == "SUCCESS"
    assert notice["MessageAttributes"]["imageId"]["Value"] == key
    assert key in notice["Message"] and "COMPLETED" in notice["Message"]


@pytest.mark.parametrize(
    "name", ["holiday photo.jpg", "a+b.jpg", "100%.jpg", "caf\u00e9 \u65e5\u672c.jpg", "x%2By.jpg"]
)
def test_awkward_keys_are_used_exactly_as_given(name: str, upload) -> None:
    key = unique_key(name)
    _, item = run(key, SAMPLES["photo.jpg"], upload)
    assert item["ImageKey"] == key == item["s3_key_original"]
    assert thumbnail_keys(key) == [f"thumbnails/{key}/100x100.jpg", f"thumbnails/{key}/640x480.jpg"]


def test_same_key_in_two_folders_never_collide(upload) -> None:
    folder = uuid.uuid4().hex[:8]
    run(f"uploads/{folder}/a/x.jpg", SAMPLES["photo.jpg"], upload)
    run(f"uploads/{folder}/b/x.jpg", SAMPLES["logo.png"], upload)
    assert thumbnail_keys(f"uploads/{folder}/a/x.jpg")[0].endswith("100x100.jpg")
    assert thumbnail_keys(f"uploads/{folder}/b/x.jpg")[0].endswith("100x100.png")


def test_second_run_for_the_same_version_does_nothing(upload, notifications) -> None:
    key = unique_key("photo.jpg")
    _, first = run(key, SAMPLES["photo.jpg"], upload)
    second_state = run_process_image(
        get_settings().uploads_bucket, key, first["etag"], return_state=True
    )
    second = read_item(key)

    assert second_state.is_completed()
    assert second == first  # not even updated_at moved
    assert len(notifications()) == 1


def test_force_redoes_a_completed_version(upload, notifications, configure) -> None:
    key = unique_key("photo.jpg")
    _, first = run(key, SAMPLES["photo.jpg"], upload)
    configure(thumbnail_sizes="50x50")  # why one forces: the sizes changed

    state = run_process_image(
        get_settings().uploads_bucket, key, first["etag"], force=True, return_state=True
    )
    second = read_item(key)

    assert state.is_completed()
    assert second["attempts"] == first["attempts"] + 1
    assert second["flow_run_id"] != first["flow_run_id"]
    assert sorted(second["thumbnails"]) == ["50x50"]
    assert second["created_at"] == first["created_at"]
    assert len(notifications()) == 2  # one per run that did the work


def test_reupload_reprocesses_and_keeps_created_at(upload) -> None:
    key = unique_key("photo.jpg")
    _, first = run(key, SAMPLES["photo.jpg"], upload)
    _, second = run(key, SAMPLES["logo.png"], upload)

    assert second["etag"] != first["etag"]
    assert second["created_at"] == first["created_at"]
    assert second["attempts"] == 2
    assert second["extracted_metadata"]["format"] == "PNG"


def test_event_for_a_replaced_version_changes_nothing(upload) -> None:
    key = unique_key("photo.jpg")
    old_etag = upload(key, SAMPLES["photo.jpg"])
    _, current = run(key, SAMPLES["logo.png"], upload)

    result = run_process_image(get_settings().uploads_bucket, key, old_etag)

    assert result["overall_processing_status"] == "SUPERSEDED"
    assert read_item(key) == current


def test_run_without_etag_processes_the_current_object(upload) -> None:
    key = unique_key("photo.jpg")
    upload(key, SAMPLES["photo.jpg"])
    item = run_process_image(get_settings().uploads_bucket, key)
    assert item["overall_processing_status"] == "COMPLETED"


def test_labels_are_recorded_when_rekognition_answers(upload, configure, fake_rekognition):
    # Moderation off: the injected errors are for the labels step (tests/flows/test_moderation.py).
    configure(labels="rekognition", moderation="off", rekognition_endpoint_url=fake_rekognition.url)
    _, item = run(unique_key("photo.jpg"), SAMPLES["photo.jpg"], upload)

    labels = item["extracted_metadata"]["rekognition_labels"]
    assert item["labels_status"] == "COMPLETED"
    assert {"Name": "Image", "Confidence": 99.0} in labels
    assert all(label["Confidence"] >= 75 for label in labels)
    assert fake_rekognition.requests[-1].image_source == "S3Object"


def test_rekognition_error_is_recorded_not_swallowed(
    upload, configure, fake_rekognition, caplog
) -> None:
    # Moderation off: the injected errors are for the labels step (tests/flows/test_moderation.py).
    configure(labels="rekognition", moderation="off", rekognition_endpoint_url=fake_rekognition.url)
    denial = (
        "User: arn:aws:sts::123456789012:assumed-role/image-pipeline-worker/i-0abc is not "
        "authorized to perform: rekognition:DetectLabels"
    )
    fake_rekognition.fail_next(1, code="AccessDeniedException", message=denial)
    state, item = run(unique_key("photo.jpg"), SAMPLES["photo.jpg"], upload)

    assert state.is_completed()  # thumbnails and metadata are still worth having
    assert item["labels_status"] == "FAILED"
    # A sentence naming the code; Rekognition's own text (the role, the account) is logged.
    assert item["rekognition_error"] == (
        "The pipeline is not allowed to read or write a resource it needs "
        "(AccessDeniedException); an operator can find the details in the run's log."
    )
    [logged] = [r for r in caplog.records if denial in r.getMessage()]
    assert logged.name == "prefect.task_runs" and logged.task_run_name.startswith("labels-")


def test_failure_in_a_later_step_names_that_step(upload, configure, notifications):
    configure(thumbnails_bucket="no-such-bucket")
    key = unique_key("photo.jpg")
    state, item = run(key, SAMPLES["photo.jpg"], upload)

    assert state.is_failed()
    assert item["overall_processing_status"] == "FAILED"
    assert (item["failed_step"], item["error_type"]) == ("thumbnails", "NoSuchBucket")
    assert item["error_message"] == (
        "A bucket, table, topic or object the pipeline needs does not exist (NoSuchBucket); "
        "an operator can find the details in the run's log."
    )  # which bucket is for the run's log
    assert "validation_status" not in item or item["validation_status"] != "INVALID"
    [notice] = notifications()
    assert notice["MessageAttributes"]["failed_step"]["Value"] == "thumbnails"


def test_failed_image_completes_when_run_again(upload, configure) -> None:
    key = unique_key("photo.jpg")
    thumbnails_bucket = get_settings().thumbnails_bucket
    configure(thumbnails_bucket="no-such-bucket")
    _, failed = run(key, SAMPLES["photo.jpg"], upload)
    configure(thumbnails_bucket=thumbnails_bucket)

    item = run_process_image(get_settings().uploads_bucket, key, failed["etag"])

    assert item["overall_processing_status"] == "COMPLETED"
    assert item["attempts"] == 2 and item["created_at"] == failed["created_at"]
    assert "error_type" not in item and "failed_step" not in item
