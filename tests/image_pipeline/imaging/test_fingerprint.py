"""dHash, pixel digests and the bands that index them."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st
from PIL import Image, ImageEnhance

from image_pipeline.imaging.decode import decode
from image_pipeline.imaging.fingerprint import (
    BANDS,
    MAX_DISTANCE,
    bands,
    dhash,
    hamming,
    pixel_digest,
)
from tests import images

LIMITS = {"max_file_bytes": 10**8, "max_pixels": 10**8, "largest_box": (640, 480)}


def photo(seed: int, size: tuple[int, int] = (800, 600)) -> Image.Image:
    """A photo-like picture whose layout depends on the seed."""
    rng = random.Random(seed)
    noise = Image.frombytes("RGB", (6, 4), rng.randbytes(6 * 4 * 3))
    im = noise.resize(size, Image.Resampling.BICUBIC)
    detail = images.picture(size, detail=True)
    return Image.blend(im, detail, 0.35)


def test_copies_of_a_photo_hash_within_a_few_bits() -> None:
    original = photo(1)
    reference = dhash(original)
    resized = original.resize((400, 300), Image.Resampling.BICUBIC)
    recompressed = images.opened(images.encode(original, "JPEG", quality=40)).convert("RGB")
    brighter = ImageEnhance.Brightness(original).enhance(1.1)
    trimmed = original.crop((20, 15, 780, 585))  # 5% off the edges

    for copy in (resized, recompressed, brighter, trimmed):
        assert hamming(reference, dhash(copy)) <= 4


def test_different_photos_hash_far_apart() -> None:
    hashes = [dhash(photo(seed)) for seed in range(6)]
    distances = [hamming(a, b) for i, a in enumerate(hashes) for b in hashes[i + 1 :]]
    assert min(distances) > MAX_DISTANCE


def test_the_hash_is_sixteen_hex_digits_in_eight_bands() -> None:
    value = dhash(photo(2))
    assert len(value) == 16 and int(value, 16) >= 0
    assert len(bands(value)) == BANDS and "".join(bands(value)) == value


@given(st.integers(0, 2**64 - 1), st.data())
def test_hashes_within_n_bits_share_one_of_the_first_n_plus_1_bands(value: int, data) -> None:
    distance = data.draw(st.integers(0, MAX_DISTANCE))
    flips = data.draw(st.sets(st.integers(0, 63), min_size=distance, max_size=distance))
    other = value
    for bit in flips:
        other ^= 1 << bit
    a, b = f"{value:016x}", f"{other:016x}"

    assert hamming(a, b) == distance
    assert any(x == y for x, y in zip(bands(a)[: distance + 1], bands(b), strict=False))


def test_the_pixel_digest_ignores_metadata_but_not_pixels() -> None:
    pixels = images.picture((320, 240), detail=True)
    plain = images.encode(pixels, "PNG")
    tagged = images.encode(pixels, "PNG", exif=images.exif(make="Canon", model="R6").tobytes())
    changed = pixels.copy()
    changed.putpixel((5, 5), (0, 0, 0))

    digest = pixel_digest(decode(plain, **LIMITS).pixels)
    assert digest == pixel_digest(decode(tagged, **LIMITS).pixels)
    assert plain != tagged
    assert digest != pixel_digest(decode(images.encode(changed, "PNG"), **LIMITS).pixels)
    # Mode and size are part of it: the same bytes read another way are other pixels.
    assert pixel_digest(Image.new("L", (4, 2))) != pixel_digest(Image.new("L", (2, 4)))
