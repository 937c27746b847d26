"""The placeholder (made by the thumbnails step) and the fingerprint step, walked with every
other step as plain functions."""

from __future__ import annotations

import base64
import secrets

import pytest
import thash

from image_pipeline.duplicates import BAND_ATTRIBUTES
from image_pipeline.imaging.fingerprint import bands
from image_pipeline.models import ImageWork
from image_pipeline.records import read_item
from tasks.pipeline import STEPS
from tasks.record import claim_record
from tests import images
from tests.tasks.conftest import MakeWork


def walk(work: ImageWork) -> ImageWork:
    for step in STEPS:
        work = step.task.fn(work)
    return work


def photo() -> bytes:
    """A photo of pixels no other test uses (a random dot), so duplicates are this test's."""
    picture = images.picture((1200, 800), detail=True)
    # `secrets`, not `random`: Hypothesis seeds the global random the same for every test.
    left, top = secrets.randbelow(1100), secrets.randbelow(700)
    picture.paste((255, 255, 255), (left, top, left + 30, top + 30))
    return images.jpeg(picture.size, image=picture)


def test_the_record_has_the_placeholder_and_the_fingerprint(work_for: MakeWork) -> None:
    work = walk(work_for(photo(), "a.jpg"))
    item = read_item(work.source.key)

    assert item is not None and item["overall_processing_status"] == "COMPLETED"
    assert work.placeholder is not None and work.fingerprint is not None
    assert item["thumbhash"] == work.placeholder.thumbhash
    decoded = base64.b64decode(item["thumbhash"])
    # From the smallest thumbnail (100x67): the aspect and the colours of the photo.
    assert thash.thumb_hash_to_approximate_aspect_ratio(decoded) == pytest.approx(1.5, rel=0.2)
    assert item["dominant_color"].startswith("#") and len(item["dominant_color"]) == 7
    assert len(item["dhash"]) == 16
    assert [item[name] for name in BAND_ATTRIBUTES] == bands(item["dhash"])
    assert len(item["pixel_sha256"]) == 64
    assert "duplicate_of" not in item


def test_the_same_pixels_under_another_key_are_a_duplicate(work_for: MakeWork) -> None:
    data = photo()
    first = walk(work_for(data, "first.jpg"))
    second = walk(work_for(data, "second.jpg"))

    item = read_item(second.source.key)
    assert item is not None and item["duplicate_of"] == first.source.key
    assert item["dhash"] == read_item(first.source.key)["dhash"]  # type: ignore[index]
    other = walk(work_for(images.jpeg((1200, 800)), "other.jpg"))  # other pixels
    assert other.item is not None and "duplicate_of" not in other.item


def test_a_new_claim_takes_the_image_out_of_the_duplicate_indexes(work_for: MakeWork) -> None:
    done = walk(work_for(photo(), "again.jpg"))
    claim_record.fn(ImageWork(source=done.source, run_id="another-run", force=True))

    item = read_item(done.source.key)
    assert item is not None and item["overall_processing_status"] == "PROCESSING"
    assert not set(BAND_ATTRIBUTES) & set(item) and "pixel_sha256" not in item
    assert item["dhash"] == done.fingerprint.dhash  # type: ignore[union-attr]


def test_a_duplicate_takes_its_labels_without_calling_rekognition(
    work_for: MakeWork, configure, fake_rekognition
) -> None:
    configure(
        labels="rekognition",
        rekognition_endpoint_url=fake_rekognition.url,
        moderation="off",  # only detect_labels is counted
        skip_labels_of_duplicates="true",
    )
    data = photo()
    first = walk(work_for(data, "labelled.jpg"))
    calls = len(fake_rekognition.requests)
    second = walk(work_for(data, "copy.jpg"))

    assert calls == 1 and len(fake_rekognition.requests) == calls
    original, copy = read_item(first.source.key), read_item(second.source.key)
    assert original is not None and copy is not None
    assert copy["labels_status"] == "COMPLETED" and copy["labels_source"] == "duplicate"
    labels = original["extracted_metadata"]["rekognition_labels"]
    assert labels and copy["extracted_metadata"]["rekognition_labels"] == labels


def test_labels_come_from_the_oldest_duplicate_that_has_some(
    work_for: MakeWork, configure, fake_rekognition
) -> None:
    data = photo()
    configure(labels="off")
    unlabelled = walk(work_for(data, "unlabelled.jpg"))  # recorded with labels off
    configure(labels="rekognition", rekognition_endpoint_url=fake_rekognition.url, moderation="off")
    labelled = walk(work_for(data, "labelled.jpg"))  # a duplicate, labelled by Rekognition
    configure(
        labels="rekognition",
        rekognition_endpoint_url=fake_rekognition.url,
        moderation="off",  # only detect_labels is counted
        skip_labels_of_duplicates="true",
    )
    third = walk(work_for(data, "third.jpg"))

    assert len(fake_rekognition.requests) == 1
    assert third.labels is not None and third.labels.source == "duplicate"
    assert third.labels.labels == labelled.labels.labels  # type: ignore[union-attr]
    assert third.fingerprint is not None
    # The oldest, to the second that `created_at` keeps: either of the two.
    assert third.fingerprint.duplicate_of in {unlabelled.source.key, labelled.source.key}


def test_without_the_setting_a_duplicate_is_labelled_by_rekognition(
    work_for: MakeWork, configure, fake_rekognition
) -> None:
    configure(labels="rekognition", rekognition_endpoint_url=fake_rekognition.url, moderation="off")
    data = photo()
    walk(work_for(data, "one.jpg"))
    second = walk(work_for(data, "two.jpg"))

    assert len(fake_rekognition.requests) == 2
    assert second.fingerprint is not None and second.fingerprint.duplicate_of
    assert second.labels is not None and second.labels.source == "s3"
