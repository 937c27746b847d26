"""describe(): the original pipeline's metadata fields, plus animation and EXIF; GPS only
when the operator opts in."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

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


PHONE_PHOTO = images.jpeg(
    (1600, 1200),
    exif_orientation=6,
    gps=(-33.5, 151.25),
    altitude=12.5,
    make="Apple",
    date_taken="2024:05:01 12:34:56",
)


def test_a_phone_photo() -> None:
    data = PHONE_PHOTO

    metadata = describe(source("uploads/2024/trip photo+1.jpg", len(data)), decoded(data))

    assert metadata == {
        "filename": "trip photo+1.jpg",
        "filesize_bytes": len(data),
        "format": "JPEG",
        "width_pixels": 1600,  # as stored, before orientation
        "height_pixels": 1200,
        "display_width": 1200,  # shown upright: orientation 6 turns it a quarter
        "display_height": 1600,
        "mode": "RGB",
        "is_animated": False,
        "frame_count": 1,
        "exif": {
            "camera_make": "Apple",
            "date_taken": "2024-05-01T12:34:56",
            "orientation": 6,  # no gps_*: where it was taken is not recorded by default
        },
    }
    assert json.loads(json.dumps(metadata)) == metadata  # plain JSON values only


@pytest.mark.parametrize("record_gps", ["true", "false"])
def test_gps_is_recorded_only_when_opted_in(
    configure: Callable[..., None], record_gps: str
) -> None:
    configure(record_gps=record_gps)
    image = decoded(PHONE_PHOTO)
    assert image.exif["gps_latitude"] == -33.5  # the file has it

    exif = describe(source("uploads/p.jpg", len(PHONE_PHOTO)), image)["exif"]

    gps = {name: value for name, value in exif.items() if name.startswith("gps")}
    expected = {"gps_latitude": -33.5, "gps_longitude": 151.25, "gps_altitude": 12.5}
    assert gps == (expected if record_gps == "true" else {})
    assert exif["camera_make"] == "Apple"  # camera and date stay either way
    assert exif["date_taken"] == "2024-05-01T12:34:56"


def test_exif_with_nothing_but_a_position_leaves_no_empty_map() -> None:
    data = images.jpeg(gps=(48.8584, 2.2945))
    assert "exif" not in describe(source("uploads/p.jpg", len(data)), decoded(data))


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
    assert (metadata["display_width"], metadata["display_height"]) == (64, 48)


@pytest.mark.parametrize(
    ("orientation", "display"),
    [(1, (300, 200)), (3, (300, 200)), (5, (200, 300)), (6, (200, 300)), (8, (200, 300))],
)
def test_display_dimensions_follow_the_orientation_and_match_the_thumbnail(
    orientation: int, display: tuple[int, int]
) -> None:
    data = images.jpeg((300, 200), exif_orientation=orientation)
    image = decoded(data)

    metadata = describe(source("uploads/o.jpg", len(data)), image)

    assert (metadata["width_pixels"], metadata["height_pixels"]) == (300, 200)
    assert (metadata["display_width"], metadata["display_height"]) == display
    assert image.pixels.size == display  # the upright pixels the thumbnails are made from


def test_the_size_is_the_objects_size() -> None:
    image = decoded(images.png())

    assert describe(source("uploads/a.png", 123456), image)["filesize_bytes"] == 123456
