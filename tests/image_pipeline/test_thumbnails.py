"""render_thumbnails(), thumbnail_key() and the thumbnails task."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from PIL import Image, ImageChops, ImageStat

from image_pipeline.aws import client
from image_pipeline.imaging import render as thumbnails_module
from image_pipeline.imaging.decode import decode
from image_pipeline.imaging.render import fit_within, render_thumbnails
from image_pipeline.keys import thumbnail_key
from image_pipeline.models import SourceObject
from image_pipeline.settings import get_settings
from image_pipeline.thumbnails import make_thumbnails
from tests import images

BOXES = [(100, 100), (640, 480)]


def render(pixels: Image.Image, boxes: list[tuple[int, int]] = BOXES, **options: Any) -> list:
    return render_thumbnails(images.decoded(pixels), boxes, **options)


# --- sizes --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "size", [(2000, 1500), (1500, 2000), (1000, 10), (10, 1000), (333, 777), (641, 481)]
)
@pytest.mark.parametrize("box", [(100, 100), (640, 480), (500, 500)])
def test_fits_the_box_and_keeps_the_aspect_ratio(size: tuple[int, int], box: tuple) -> None:
    [thumb] = render(images.solid(size, "RGB", (90, 120, 200)), [box])
    opened = images.opened(thumb.data)
    scale = min(box[0] / size[0], box[1] / size[1])

    assert opened.size == (thumb.width, thumb.height)
    assert thumb.width <= box[0] and thumb.height <= box[1]
    assert thumb.width == box[0] or thumb.height == box[1]  # as large as the box allows
    # Aspect kept: each side is the exactly scaled side, give or take the rounding pixel.
    assert abs(thumb.width - size[0] * scale) <= 1
    assert abs(thumb.height - size[1] * scale) <= 1


def test_never_upscales() -> None:
    small, exact = render(images.picture((50, 40)), [(100, 100), (50, 40)])

    assert (small.width, small.height) == (50, 40)
    assert (exact.width, exact.height) == (50, 40)


def test_a_thin_strip_never_gets_a_zero_side() -> None:
    [thumb] = render(images.solid((10000, 2), "L", 128), [(100, 100)])

    assert (thumb.width, thumb.height) == (100, 1)


def test_fit_within() -> None:
    assert fit_within((4000, 3000), (640, 480)) == (640, 480)
    assert fit_within((3000, 4000), (640, 480)) == (360, 480)
    assert fit_within((200, 100), (640, 480)) == (200, 100)
    assert fit_within((1000, 1), (100, 100)) == (100, 1)


def test_output_follows_the_order_of_the_boxes() -> None:
    boxes = [(100, 100), (640, 480), (320, 240)]

    thumbs = render(images.picture((1600, 1200)), boxes)

    assert [t.box for t in thumbs] == boxes
    assert [t.label for t in thumbs] == ["100x100", "640x480", "320x240"]
    assert [(t.width, t.height) for t in thumbs] == [(100, 75), (640, 480), (320, 240)]


def test_cascade_makes_each_size_from_the_previous_result(monkeypatch: pytest.MonkeyPatch) -> None:
    sources: list[tuple[tuple[int, int], tuple[int, int]]] = []
    real_resize = thumbnails_module._resize

    def spy(source: Image.Image, target: tuple[int, int]) -> Image.Image:
        sources.append((source.size, target))
        return real_resize(source, target)

    monkeypatch.setattr(thumbnails_module, "_resize", spy)
    render(images.picture((1600, 1200)), [(100, 100), (320, 240), (640, 480)])

    assert sources == [
        ((1600, 1200), (640, 480)),  # the largest from the image
        ((640, 480), (320, 240)),  # each next one from the previous result
        ((320, 240), (100, 75)),
    ]


def test_cascade_orders_by_the_size_needed_not_by_the_box(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sources: list[tuple[int, int]] = []
    real_resize = thumbnails_module._resize
    monkeypatch.setattr(
        thumbnails_module,
        "_resize",
        lambda source, target: sources.append(source.size) or real_resize(source, target),
    )

    # Portrait 1000x2000: the larger box, 640x480, gives 240x480; 500x500 gives 250x500.
    thumbs = render(images.picture((1000, 2000)), [(640, 480), (500, 500)])

    assert [(t.width, t.height) for t in thumbs] == [(240, 480), (250, 500)]
    assert sources == [(1000, 2000), (250, 500)]  # never 250x500 enlarged from 240x480


# --- formats ----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_opaque_images_become_jpeg(mode: str) -> None:
    for thumb in render(images.picture((800, 600), mode)):
        assert (thumb.format, thumb.content_type, thumb.extension) == ("JPEG", "image/jpeg", "jpg")
        opened = images.opened(thumb.data)
        assert opened.format == "JPEG"
        assert opened.mode == mode


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
@pytest.mark.parametrize(
    ("transparent_format", "content_type"), [("PNG", "image/png"), ("WEBP", "image/webp")]
)
def test_transparent_images_keep_alpha(
    mode: str, transparent_format: str, content_type: str
) -> None:
    thumbs = render(images.picture((800, 600), mode), transparent_format=transparent_format)

    for thumb in thumbs:
        assert (thumb.format, thumb.content_type) == (transparent_format, content_type)
        opened = images.opened(thumb.data)
        assert opened.format == transparent_format
        assert opened.has_transparency_data
        alpha = opened.convert("RGBA").getchannel("A")
        assert alpha.getpixel((0, 0)) > 240 and alpha.getpixel((opened.width - 1, 0)) < 15


def test_jpeg_quality_is_applied() -> None:
    picture = images.picture((800, 600), detail=True)

    [low] = render(picture, [(640, 480)], jpeg_quality=20)
    [high] = render(picture, [(640, 480)], jpeg_quality=95)

    assert len(low.data) < len(high.data) / 2


def test_no_exif_or_other_metadata_reaches_a_thumbnail() -> None:
    gps = (-33.8568, -151.2153)
    jpeg = images.jpeg((800, 600), gps=gps, make="Apple", icc_profile=images.srgb_profile())
    png = images.png((800, 600), mode="RGBA", gps=gps, icc_profile=images.srgb_profile())
    sources = [
        decode(data, max_file_bytes=10**7, max_pixels=10**7, largest_box=(640, 480))
        for data in (jpeg, png)
    ]
    assert all(image.exif.get("gps_latitude") for image in sources)

    for image in sources:
        for thumb in render_thumbnails(image, BOXES):
            opened = images.opened(thumb.data)
            assert dict(opened.getexif()) == {}
            assert b"Exif" not in thumb.data and b"eXIf" not in thumb.data
            assert "icc_profile" not in opened.info and "exif" not in opened.info


def test_metadata_in_the_pixels_info_is_not_copied_either() -> None:
    # PNG's encoder would copy an ICC profile and more from `info` if it were left there.
    data = images.png((200, 150), mode="RGBA", gps=(10.0, 10.0), icc_profile=images.srgb_profile())
    pixels = images.opened(data)
    assert "icc_profile" in pixels.info and "exif" in pixels.info

    for thumb in render(pixels, [(100, 100), (300, 300)]):
        assert b"iCCP" not in thumb.data and b"eXIf" not in thumb.data
        assert images.opened(thumb.data).info.keys().isdisjoint({"icc_profile", "exif"})


def test_reduced_jpeg_decode_matches_a_full_decode() -> None:
    data = images.jpeg((2400, 1800), image=images.picture((2400, 1800), detail=True))
    limits = dict(max_file_bytes=10**8, max_pixels=10**8)
    reduced = decode(data, largest_box=(640, 480), **limits)
    full = decode(data, largest_box=(10**5, 10**5), **limits)
    assert reduced.pixels.width < full.pixels.width  # the draft path really was taken

    for fast, reference in zip(
        render_thumbnails(reduced, BOXES), render_thumbnails(full, BOXES), strict=True
    ):
        a, b = images.opened(fast.data), images.opened(reference.data)
        assert a.size == b.size
        difference = ImageStat.Stat(ImageChops.difference(a, b)).mean
        assert max(difference) < 3  # out of 255: visually the same


# --- keys -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source_key", "expected"),
    [
        ("uploads/a/x.jpg", "thumbnails/uploads/a/x.jpg/100x100.jpg"),
        ("uploads/my photo.jpg", "thumbnails/uploads/my photo.jpg/100x100.jpg"),
        ("uploads/a+b.jpg", "thumbnails/uploads/a+b.jpg/100x100.jpg"),
        ("uploads/100%25.jpg", "thumbnails/uploads/100%25.jpg/100x100.jpg"),
        ("uploads/café/日本 😀.jpg", "thumbnails/uploads/café/日本 😀.jpg/100x100.jpg"),
    ],
)
def test_thumbnail_key_keeps_the_source_key_verbatim(source_key: str, expected: str) -> None:
    assert thumbnail_key(source_key, "100x100", "jpg") == expected


def test_same_basename_in_two_folders_never_collides() -> None:
    assert thumbnail_key("uploads/a/x.jpg", "100x100", "jpg") != thumbnail_key(
        "uploads/b/x.jpg", "100x100", "jpg"
    )


# --- the task ---------------------------------------------------------------------------------


def test_make_thumbnails_uploads_every_size(aws_stack: str) -> None:
    source = SourceObject(
        bucket="uploads",
        key="uploads/a b+c%.png",
        etag="e",
        size=1,
        last_modified=datetime(2024, 5, 1, tzinfo=UTC),
    )
    bucket = get_settings().thumbnails_bucket

    stored = make_thumbnails(source, images.decoded(images.picture((1600, 1200), "RGBA")))

    assert [t.label for t in stored] == [f"{w}x{h}" for w, h in get_settings().thumbnail_sizes]
    for thumb in stored:
        obj = client("s3").get_object(Bucket=bucket, Key=thumb.key)
        assert thumb.key == f"thumbnails/uploads/a b+c%.png/{thumb.label}.png"
        assert thumb.uri == f"s3://{bucket}/{thumb.key}"
        assert obj["ContentType"] == thumb.content_type == "image/png"
        assert images.opened(obj["Body"].read()).size == (thumb.width, thumb.height)
