"""Thumbnail crops (fit, cover, entropy) and formats (JPEG, WebP, AVIF)."""

from __future__ import annotations

import random

import pytest
from PIL import Image, ImageStat

from image_pipeline.imaging.decode import decode
from image_pipeline.imaging.render import render_thumbnails
from image_pipeline.models import ThumbnailSpec
from tests import images


def render(pixels: Image.Image, *specs: ThumbnailSpec, **options):
    return render_thumbnails(images.decoded(pixels), list(specs), **options)


def colour_of(data: bytes) -> tuple[float, ...]:
    return tuple(ImageStat.Stat(images.opened(data).convert("RGB")).mean)


def stripes(size: tuple[int, int], colours: list[tuple[int, int, int]], vertical: bool = True):
    """Equal bands of `colours`, left to right (or top to bottom)."""
    im = Image.new("RGB", size)
    n = len(colours)
    for i, colour in enumerate(colours):
        if vertical:
            im.paste(colour, (size[0] * i // n, 0, size[0] * (i + 1) // n, size[1]))
        else:
            im.paste(colour, (0, size[1] * i // n, size[0], size[1] * (i + 1) // n))
    return im


RED, GREEN, BLUE = (220, 20, 20), (20, 200, 20), (20, 20, 220)


@pytest.mark.parametrize("size", [(900, 300), (300, 900), (640, 480), (1000, 999)])
def test_cover_fills_the_box_exactly(size: tuple[int, int]) -> None:
    [thumb] = render(images.picture(size, detail=True), ThumbnailSpec((100, 100), "cover"))
    assert (thumb.width, thumb.height) == (100, 100)
    assert images.opened(thumb.data).size == (100, 100)


def test_cover_keeps_the_centre() -> None:
    wide = stripes((900, 300), [RED, GREEN, BLUE])
    tall = stripes((300, 900), [RED, GREEN, BLUE], vertical=False)
    for picture in (wide, tall):
        [thumb] = render(picture, ThumbnailSpec((100, 100), "cover"))
        red, green, blue = colour_of(thumb.data)
        assert green > 150 and red < 60 and blue < 60


def test_entropy_crops_where_the_detail_is() -> None:
    rng = random.Random(3)
    picture = Image.new("RGB", (900, 300), (128, 128, 128))
    blocks = Image.frombytes("RGB", (30, 30), rng.randbytes(30 * 30 * 3))
    detail = blocks.resize((300, 300), Image.Resampling.NEAREST)
    picture.paste(detail, (600, 0))  # the right third is busy, the rest flat

    [busy] = render(picture, ThumbnailSpec((100, 100), "entropy"))
    [centre] = render(picture, ThumbnailSpec((100, 100), "cover"))

    assert min(ImageStat.Stat(images.opened(busy.data)).stddev) > 40
    assert max(ImageStat.Stat(images.opened(centre.data)).stddev) < 5


def test_entropy_prefers_the_centre_among_equals() -> None:
    # Every window of a flat picture scores alike: the centre one is taken, as by cover.
    flat = images.picture((900, 300))
    flat.paste(GREEN, (0, 0, 900, 300))
    flat.paste(RED, (440, 140, 460, 160))  # a dot in the middle marks the centre
    [entropy] = render(flat, ThumbnailSpec((300, 300), "entropy"))
    assert images.opened(entropy.data).convert("RGB").getpixel((150, 150))[0] > 150


def test_cover_never_enlarges_and_keeps_the_box_shape() -> None:
    small = images.picture((80, 200))
    [thumb] = render(small, ThumbnailSpec((100, 100), "cover"))
    assert (thumb.width, thumb.height) == (80, 80)
    [wide] = render(small, ThumbnailSpec((200, 100), "cover"))
    assert (wide.width, wide.height) == (80, 40)


def test_fit_is_the_default_and_unchanged() -> None:
    [spec, bare] = render(images.picture((900, 300)), ThumbnailSpec((100, 100)), (100, 100))
    assert (spec.width, spec.height) == (bare.width, bare.height) == (100, 33)
    assert spec.data == bare.data


@pytest.mark.parametrize(
    ("fmt", "pillow_format", "content_type", "extension"),
    [
        ("JPEG", "JPEG", "image/jpeg", "jpg"),
        ("WEBP", "WEBP", "image/webp", "webp"),
        ("AVIF", "AVIF", "image/avif", "avif"),
    ],
)
@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_each_format_is_encoded_as_named(
    fmt: str, pillow_format: str, content_type: str, extension: str, mode: str
) -> None:
    picture = images.picture((640, 480), mode, detail=True)
    [thumb] = render(picture, ThumbnailSpec((320, 240), "fit", fmt))  # type: ignore[arg-type]

    opened = images.opened(thumb.data)
    assert opened.format == pillow_format and thumb.format == fmt
    assert thumb.content_type == content_type and thumb.extension == extension
    assert opened.size == (320, 240)
    # The picture survives: its red top-left mark is still red.
    red, green, _ = opened.convert("RGB").getpixel((20, 20))
    assert (red > 150 and green < 90) if mode == "RGB" else abs(red - green) < 10


@pytest.mark.parametrize(("fmt", "expected"), [("WEBP", "WEBP"), ("AVIF", "AVIF")])
def test_webp_and_avif_keep_transparency(fmt: str, expected: str) -> None:
    [thumb] = render(
        images.picture((200, 100), "RGBA"),
        ThumbnailSpec((100, 100), "cover", fmt),  # type: ignore[arg-type]
    )
    opened = images.opened(thumb.data)
    assert opened.format == expected and opened.mode == "RGBA"
    assert opened.getpixel((95, 50))[3] < 100  # the right side is transparent


@pytest.mark.parametrize("transparent", ["PNG", "WEBP"])
def test_a_jpeg_thumbnail_of_a_transparent_image_takes_the_transparent_format(
    transparent: str,
) -> None:
    [thumb] = render(
        images.picture((200, 100), "LA"), ThumbnailSpec((100, 100)), transparent_format=transparent
    )
    assert images.opened(thumb.data).format == transparent == thumb.format


def test_the_smallest_thumbnail_keeps_its_pixels() -> None:
    big, small = render(
        images.picture((900, 600)),
        ThumbnailSpec((640, 480)),
        ThumbnailSpec((100, 100), "cover", "WEBP"),
    )
    assert small.pixels is not None and small.pixels.size == (100, 100)
    assert big.pixels is not None and big.pixels.size == (640, 427)


def test_a_cover_thumbnail_of_a_jpeg_gets_enough_pixels_from_the_reduced_decode() -> None:
    data = images.jpeg((4000, 1000))
    limits = {"max_file_bytes": 10**8, "max_pixels": 10**8, "largest_box": (640, 480)}

    fitted = decode(data, **limits)
    covered = decode(data, cover=True, **limits)

    assert fitted.pixels.height < 480 <= covered.pixels.height
    [thumb] = render_thumbnails(covered, [ThumbnailSpec((640, 480), "cover")])
    assert (thumb.width, thumb.height) == (640, 480)
