"""describe(): the original pipeline's metadata fields, plus animation and EXIF."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from image_pipeline.imaging.decode import decode
from image_pipeline.metadata import describe
from image_pipeline.models import DecodedImage, SourceObject
from tests import images


def source(key: str, size: int) -> SourceObject:
    return SourceObject(
        bucket="uploads",
        key=key,
        etag="e",
        size=size,
        last_modified=datetime(2024, 5, 1, tzinfo=UTC),
    )


def decoded(data: bytes) -> DecodedImage:
    return decode(data, max_file_bytes=10**8, max_pixels=10**8, largest_box=(640, 480))


def test_a_phone_photo() -> None:
    data = images.jpeg(
        (1600, 1200),
        exif_orientation=6,
        gps=(-33.5, 151.25),
        make="Apple",
        date_taken="2024:05:01 12:34:56",
    )

    metadata = describe(source("uploads/2024/trip photo+1.jpg", len(data)), decoded(data))

    assert metadata == {
        "filename": "trip photo+1.jpg",
        "filesize_bytes": len(data),
        "format": "JPEG",
        "width_pixels": 1600,  # as stored, before orientation
        "height_pixels": 1200,
        "mode": "RGB",
        "is_animated": False,
        "frame_count": 1,
        "exif": {
            "camera_make": "Apple",
            "date_taken": "2024-05-01T12:34:56",
            "orientation": 6,
            "gps_latitude": -33.5,
            "gps_longitude": 151.25,
        },
    }
    assert json.loads(json.dumps(metadata)) == metadata  # plain JSON values only


def test_an_animated_gif() -> None:
    data = images.gif((64, 48), frames=3)

    metadata = describe(source("uploads/loop.gif", len(data)), decoded(data))

    assert metadata["format"] == "GIF"
    assert metadata["mode"] == "P"
    assert metadata["is_animated"] is True
    assert metadata["frame_count"] == 3
    assert "exif" not in metadata  # none in the file: no empty map in the item


def test_heic_and_a_key_without_folders() -> None:
    data = images.heic((64, 48))

    metadata = describe(source("x.heic", len(data)), decoded(data))

    assert metadata["filename"] == "x.heic"
    assert metadata["format"] == "HEIF"
    assert (metadata["width_pixels"], metadata["height_pixels"]) == (64, 48)


def test_the_size_is_the_objects_size() -> None:
    image = decoded(images.png())

    assert describe(source("uploads/a.png", 123456), image)["filesize_bytes"] == 123456
