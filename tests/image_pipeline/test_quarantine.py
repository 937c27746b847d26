"""Withdrawing an image's other set of thumbnails (moderation), against MiniStack's S3."""

from __future__ import annotations

import uuid

import pytest

from image_pipeline.aws import client
from image_pipeline.errors import Superseded
from image_pipeline.keys import (
    QUARANTINE_PREFIX,
    THUMBNAILS_PREFIX,
    thumbnail_key,
    thumbnails_folder,
)
from image_pipeline.settings import get_settings
from image_pipeline.thumbnails import GENERATION, withdraw


def put(key: str, generation: int | None = None) -> None:
    metadata = {GENERATION: str(generation)} if generation is not None else {}
    client("s3").put_object(
        Bucket=get_settings().thumbnails_bucket, Key=key, Body=b"jpeg", Metadata=metadata
    )


def listed(prefix: str) -> list[str]:
    answer = client("s3").list_objects_v2(Bucket=get_settings().thumbnails_bucket, Prefix=prefix)
    return sorted(obj["Key"] for obj in answer.get("Contents", []))


@pytest.fixture
def source_key(aws_stack: str) -> str:
    return f"uploads/quarantine-{uuid.uuid4().hex[:8]}/a.jpg"


def test_the_two_folders_are_as_long_as_each_other() -> None:
    # keys.check_key's length check counts `thumbnails/`; a quarantined key must fit too.
    assert len(QUARANTINE_PREFIX) == len(THUMBNAILS_PREFIX)
    assert thumbnail_key("uploads/a.jpg", "100x100", "jpg", quarantined=True) == (
        "quarantine/uploads/a.jpg/100x100.jpg"
    )


def test_withdraw_deletes_that_image_s_set_and_nothing_else(source_key: str) -> None:
    folder = thumbnails_folder(source_key)
    neighbour = thumbnails_folder(source_key + "2")  # a key that starts the same
    for key in (f"{folder}100x100.jpg", f"{folder}640x480.jpg", f"{neighbour}100x100.jpg"):
        put(key, generation=1)

    deleted = withdraw(get_settings().thumbnails_bucket, folder, generation=2)

    assert sorted(deleted) == [f"{folder}100x100.jpg", f"{folder}640x480.jpg"]
    assert listed(folder) == []
    assert listed(neighbour) == [f"{neighbour}100x100.jpg"]


def test_withdraw_never_deletes_a_later_claim_s_thumbnail(source_key: str) -> None:
    folder = thumbnails_folder(source_key, quarantined=True)
    put(f"{folder}100x100.jpg", generation=7)

    with pytest.raises(Superseded, match="later claim"):
        withdraw(get_settings().thumbnails_bucket, folder, generation=3)

    assert listed(folder) == [f"{folder}100x100.jpg"]


def test_withdraw_takes_thumbnails_from_before_fencing_and_an_empty_folder(
    source_key: str,
) -> None:
    folder = thumbnails_folder(source_key)
    put(f"{folder}100x100.jpg")  # no generation: written before fencing existed
    assert withdraw(get_settings().thumbnails_bucket, folder, generation=1) == [
        f"{folder}100x100.jpg"
    ]
    assert withdraw(get_settings().thumbnails_bucket, folder, generation=1) == []
