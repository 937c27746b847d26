"""ThumbHash (checked against the reference implementation) and the dominant colour."""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest
import thash
from PIL import Image, ImageStat

from image_pipeline.imaging.placeholder import dominant_color, placeholder, thumbhash
from tests import images

Pixel = tuple[int, int, int, int]

# Vectors of ThumbHash's reference encoder (evanw/thumbhash, `rgbaToThumbHash` of the npm
# package `thumbhash` 0.1.1, run with Node 20) on pictures defined by these formulas, so the
# test rebuilds the exact same pixels. A change of encoder that drifts from the format fails.
# The checker and the tiny picture are symmetric enough to have AC coefficients of exactly 0,
# which the format stores as 7.5 rounded: a tie that float noise sends to 7 or 8 (thash's
# NumPy encoder, in float32, and even the Rust port of the reference do not always agree with
# the JavaScript one there). Both decode to the same picture within 1/15 of a coefficient.
REFERENCE: dict[str, tuple[int, int, Callable[[int, int, int, int], Pixel], str]] = {
    "gradient_100x75": (
        100,
        75,
        lambda x, y, w, h: (x * 255 // (w - 1), y * 255 // (h - 1), (x + y) * 7 % 256, 255),
        "3wcKPZpwd4dweHh3h3eHd4CACPh3",
    ),
    "alpha_64x100": (
        64,
        100,
        lambda x, y, w, h: ((x * x + y) % 256, (3 * x * y) % 256, 200, x * 255 // (w - 1)),
        "pQWCAwA3d8B0WFl3wDcMn4CHiIiIiIg=",
    ),
    "checker_32x32": (
        32,
        32,
        lambda x, y, w, h: (((x // 4 + y // 4) % 2) * 255,) * 3 + (255,),
        "IAgCBwB4eIc4KAeIeHiCcYgHBwAAAAAA",
    ),
    "tiny_3x7": (3, 7, lambda x, y, w, h: (x * 80, y * 30, 128, 255), "meYJMxZwcXiId4d3cHEH54g="),
}


def formula_picture(width: int, height: int, pixel: Callable[[int, int, int, int], Pixel]):
    data = bytes(
        value for y in range(height) for x in range(width) for value in pixel(x, y, width, height)
    )
    return Image.frombytes("RGBA", (width, height), data)


def nibbles(data: bytes) -> list[int]:
    return [n for byte in data for n in (byte & 15, byte >> 4)]


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_thumbhash_matches_the_reference_encoder(name: str) -> None:
    width, height, pixel, expected = REFERENCE[name]
    picture = formula_picture(width, height, pixel)
    reference = base64.b64decode(expected)

    ours = base64.b64decode(thumbhash(picture))

    # The header (average colour, scales, aspect: 5 bytes, 6 with alpha) is exact; the AC
    # coefficients are exact but for ties of a zero coefficient (see REFERENCE).
    header = 6 if name.startswith("alpha") else 5
    assert len(ours) == len(reference)
    assert ours[:header] == reference[:header]
    ties = [(a, b) for a, b in zip(nibbles(ours), nibbles(reference), strict=True) if a != b]
    assert all({a, b} == {7, 8} for a, b in ties), ties
    if name == "gradient_100x75":  # no zero coefficient: no tie, so byte for byte
        assert ours == reference


def test_thumbhash_of_a_photo_decodes_to_its_colours_and_shape() -> None:
    photo = images.picture((640, 360), detail=True)  # larger than ThumbHash's 100 px
    encoded = base64.b64decode(thumbhash(photo))

    red, green, blue, alpha = thash.thumb_hash_to_average_rgba(encoded)
    mean = [value / 255 for value in ImageStat.Stat(photo).mean]
    assert abs(red - mean[0]) < 0.08 and abs(green - mean[1]) < 0.08
    assert abs(blue - mean[2]) < 0.08 and alpha == 1
    assert thash.thumb_hash_to_approximate_aspect_ratio(encoded) == pytest.approx(16 / 9, rel=0.1)


def test_thumbhash_keeps_transparency() -> None:
    encoded = base64.b64decode(thumbhash(images.picture((80, 80), "RGBA")))
    assert thash.thumb_hash_to_average_rgba(encoded)[3] < 0.8


def test_dominant_colour_is_the_commonest_colour() -> None:
    im = Image.new("RGB", (100, 100), (200, 30, 40))  # 70% red
    im.paste((20, 40, 220), (0, 0, 100, 30))  # 30% blue
    assert dominant_color(im) == "#c81e28"


def test_dominant_colour_survives_jpeg_noise() -> None:
    im = Image.new("RGB", (120, 80), (40, 120, 60))
    im.paste((250, 250, 250), (0, 0, 30, 80))
    noisy = images.opened(images.encode(im, "JPEG", quality=60)).convert("RGB")

    red, green, blue = (int(dominant_color(noisy)[i : i + 2], 16) for i in (1, 3, 5))
    assert abs(red - 40) <= 6 and abs(green - 120) <= 6 and abs(blue - 60) <= 6


def test_dominant_colour_ignores_transparent_pixels() -> None:
    im = Image.new("RGBA", (50, 50), (255, 0, 0, 0))  # mostly invisible red
    im.paste((0, 0, 255, 255), (0, 0, 50, 10))  # a fifth opaque blue
    assert dominant_color(im) == "#0000ff"
    assert dominant_color(Image.new("LA", (8, 8), (90, 0))) == "#5a5a5a"  # nothing opaque


def test_placeholder_takes_grey_pictures() -> None:
    made = placeholder(Image.new("L", (30, 20), 128))
    assert made.dominant_color == "#808080"
    assert thash.thumb_hash_to_average_rgba(base64.b64decode(made.thumbhash))[0] == pytest.approx(
        128 / 255, abs=0.02
    )
