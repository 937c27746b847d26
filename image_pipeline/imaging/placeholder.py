"""Placeholders: a ThumbHash and the dominant colour of a (small) picture, without any I/O.

ThumbHash (https://github.com/evanw/thumbhash) encodes a picture of at most 100x100 px in
about 25 bytes, alpha and aspect ratio included; pages decode it into a blurred preview
while the thumbnail loads. The encoder is the `thash` package, checked against vectors of
the reference implementation in the tests.
"""

from __future__ import annotations

import base64

import numpy as np
import thash
from PIL import Image

from image_pipeline.models import Placeholder

THUMBHASH_MAX_SIDE = 100  # the format's limit on the encoded picture
# The dominant colour is found on at most this many pixels a side: a colour that covers the
# picture does so at any scale.
COLOUR_SIDE = 64
# Pixels are grouped by their colour to 4 bits a channel (4096 groups): fine enough to tell
# apart colours a person names differently, coarse enough that JPEG noise stays in one group.
COLOUR_BITS = 4
# Pixels at least this opaque count towards the dominant colour.
OPAQUE = 128


def placeholder(pixels: Image.Image) -> Placeholder:
    """The ThumbHash and the dominant colour of `pixels` (RGB, RGBA, L or LA)."""
    return Placeholder(thumbhash=thumbhash(pixels), dominant_color=dominant_color(pixels))


def thumbhash(pixels: Image.Image) -> str:
    """The picture's ThumbHash, base64 (as the reference decoders take it)."""
    small = _shrunk(pixels, THUMBHASH_MAX_SIDE).convert("RGBA")
    return base64.b64encode(bytes(thash.encode(small, resize=False))).decode("ascii")


def dominant_color(pixels: Image.Image) -> str:
    """`#rrggbb`: the mean of the most common colour group among the opaque pixels."""
    rgba = np.asarray(_shrunk(pixels, COLOUR_SIDE).convert("RGBA")).reshape(-1, 4)
    opaque = rgba[rgba[:, 3] >= OPAQUE][:, :3]
    if len(opaque) == 0:  # a fully transparent picture: its colour is what is underneath
        opaque = rgba[:, :3]
    shift = 8 - COLOUR_BITS
    groups = opaque.astype(np.int32) >> shift
    codes = (groups[:, 0] << (2 * COLOUR_BITS)) | (groups[:, 1] << COLOUR_BITS) | groups[:, 2]
    commonest = np.bincount(codes).argmax()
    red, green, blue = np.rint(opaque[codes == commonest].mean(axis=0)).astype(int)
    return f"#{red:02x}{green:02x}{blue:02x}"


def _shrunk(pixels: Image.Image, side: int) -> Image.Image:
    if pixels.width <= side and pixels.height <= side:
        return pixels
    small = pixels.copy()
    small.thumbnail((side, side), Image.Resampling.BICUBIC)
    return small
