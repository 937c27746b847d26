"""Rendering: fit each box (or cover it and crop) and encode, without any I/O."""

from __future__ import annotations

import io
from collections.abc import Sequence

from PIL import Image

from image_pipeline.models import DecodedImage, RenderedThumbnail, Size, ThumbnailSpec

CONTENT_TYPES = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "AVIF": "image/avif",
}

# Lossy WebP with transparency; higher than Pillow's default 80 because logos and line art
# are the usual transparent uploads and show artefacts first.
WEBP_QUALITY = 90
# Opaque WebP (photos): Pillow's default quality, and libwebp's method 2 instead of 4: half
# the encode time for a file about 3% larger (a 640x480 photo here: 21 ms instead of 39 ms).
WEBP_PHOTO_OPTIONS = {"quality": 80, "method": 2}
# AVIF at libavif's fastest speed: 55 ms instead of 317 ms (Pillow's default speed 6) for a
# 640x480 photo here, for a file 4% larger; encoding is on every upload's critical path.
AVIF_QUALITY = 60
AVIF_SPEED = 10
# The entropy crop scores windows on a copy whose crop is at most this many pixels on its
# short side: where the detail is does not need more, and scoring stays well under 1 ms.
ENTROPY_SIDE = 64
ENTROPY_POSITIONS = 9

# Pillow shrinks by an integer factor with a box filter first, then finishes with BICUBIC
# (`thumbnail()`'s own filter) from at most 3x the target size. BICUBIC instead of LANCZOS:
# 6 ms less per 12 MP photo (BENCHMARKS.md) with no difference visible at thumbnail size.
REDUCING_GAP = 3.0


def fit_within(size: Size, box: Size) -> Size:
    """The size of `size` scaled to fit inside `box`, aspect kept, never enlarged."""
    width, height = size
    if width <= box[0] and height <= box[1]:
        return width, height
    scale = min(box[0] / width, box[1] / height)
    # Round, but never to 0 (a 10000x1 strip) and never past the box.
    return (
        min(box[0], max(1, round(width * scale))),
        min(box[1], max(1, round(height * scale))),
    )


def cover_size(size: Size, box: Size) -> Size:
    """The size of `size` scaled to cover `box` on both axes, aspect kept, never enlarged."""
    width, height = size
    scale = min(1.0, max(box[0] / width, box[1] / height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def resize_target(size: Size, spec: ThumbnailSpec) -> Size:
    """What the image is resized to for `spec`, before any crop."""
    return fit_within(size, spec.box) if spec.crop == "fit" else cover_size(size, spec.box)


def render_thumbnails(
    image: DecodedImage,
    thumbnails: Sequence[Size | ThumbnailSpec],
    *,
    transparent_format: str = "PNG",
    jpeg_quality: int = 85,
) -> list[RenderedThumbnail]:
    """One encoded thumbnail per spec (a bare box is fit, JPEG), in the order given."""
    specs = [t if isinstance(t, ThumbnailSpec) else ThumbnailSpec(t) for t in thumbnails]
    targets = [resize_target(image.pixels.size, spec) for spec in specs]
    resized = _resize_cascade(image.pixels, targets)
    return [
        _encode(spec, _crop(resized[target], spec), transparent_format, jpeg_quality)
        for spec, target in zip(specs, targets, strict=True)
    ]


def _crop(im: Image.Image, spec: ThumbnailSpec) -> Image.Image:
    """`im` cut to the box's aspect (to the box itself when `im` covers it); fit: as is."""
    if spec.crop == "fit":
        return im
    width, height = fit_within(spec.box, im.size)  # the box, shrunk only if `im` is smaller
    if (width, height) == im.size:
        return im
    if spec.crop == "entropy":
        left, top = _busiest_window(im, (width, height))
    else:
        left, top = (im.width - width) // 2, (im.height - height) // 2
    return im.crop((left, top, left + width, top + height))


def _busiest_window(im: Image.Image, window: Size) -> tuple[int, int]:
    """Where to place `window` along the axis `im` overflows: the position of highest entropy.

    Scored on a reduced copy; among equal scores the one nearest the centre wins, so a flat
    picture is cropped like `cover`.
    """
    factor = max(1, min(window) // ENTROPY_SIDE)
    small = im.reduce(factor) if factor > 1 else im
    sw, sh = max(1, window[0] // factor), max(1, window[1] // factor)
    horizontal = im.width - window[0] > 0
    overflow = (small.width - sw) if horizontal else (small.height - sh)
    overflow = max(0, overflow)
    steps = min(ENTROPY_POSITIONS - 1, overflow) or 1
    positions = sorted({round(overflow * i / steps) for i in range(steps + 1)})
    centre = overflow / 2

    def score(offset: int) -> tuple[float, float]:
        box = (offset, 0, offset + sw, sh) if horizontal else (0, offset, sw, offset + sh)
        return small.crop(box).entropy(), -abs(offset - centre)

    best = max(positions, key=score)
    full_overflow = (im.width - window[0]) if horizontal else (im.height - window[1])
    offset = min(full_overflow, round(best * factor))
    return (offset, 0) if horizontal else (0, offset)


def _resize_cascade(pixels: Image.Image, targets: list[Size]) -> dict[Size, Image.Image]:
    """Each target size once, largest first, each made from the previous result.

    Resizing from the previous result is much cheaper than from the full image. The order is
    by the size needed, not by the box: for a portrait photo 500x500 needs more pixels than
    640x480. All targets share the image's aspect ratio, so the previous result covers the
    next on both axes; the check only guards against ever enlarging.
    """
    done: dict[Size, Image.Image] = {}
    source = pixels
    for target in sorted(set(targets), key=lambda s: s[0] * s[1], reverse=True):
        if source.width < target[0] or source.height < target[1]:
            source = pixels
        done[target] = source = _resize(source, target)
    return done


def _resize(source: Image.Image, target: Size) -> Image.Image:
    if source.size == target:
        return source
    # Pillow premultiplies alpha while resampling RGBA/LA, so edges don't get dark fringes.
    return source.resize(target, Image.Resampling.BICUBIC, reducing_gap=REDUCING_GAP)


def output_format(spec: ThumbnailSpec, has_alpha: bool, transparent_format: str) -> str:
    """The format a thumbnail is encoded in: JPEG cannot hold transparency."""
    if spec.format == "JPEG" and has_alpha:
        return transparent_format
    return spec.format


def _encode(
    spec: ThumbnailSpec, im: Image.Image, transparent_format: str, jpeg_quality: int
) -> RenderedThumbnail:
    fmt = output_format(spec, im.mode in ("RGBA", "LA"), transparent_format)
    options: dict[str, object] = {}
    if fmt in ("WEBP", "AVIF") and im.mode in ("L", "LA"):
        # Neither has a grey mode; AVIF would otherwise be encoded as 4:0:0 by some builds.
        im = im.convert("RGBA" if im.mode == "LA" else "RGB")
    if fmt == "WEBP":
        options = {"quality": WEBP_QUALITY} if im.mode == "RGBA" else dict(WEBP_PHOTO_OPTIONS)
    elif fmt == "AVIF":
        options = {"quality": AVIF_QUALITY, "speed": AVIF_SPEED}
    elif fmt == "JPEG":
        # Baseline, not progressive: 0.8 ms instead of 5 ms at 640x480 for files about 6%
        # larger (BENCHMARKS.md); encoding is on every upload's critical path.
        options = {"quality": jpeg_quality, "optimize": False, "progressive": False}
    buffer = io.BytesIO()
    # `exif`, `icc_profile` and text chunks are never passed, and PNG would otherwise copy
    # them from `info`: thumbnails carry pixels only, so no GPS position can leak.
    clean = im.copy()
    clean.info = {}
    clean.save(buffer, fmt, **options)
    return RenderedThumbnail(
        box=spec.box,
        width=im.width,
        height=im.height,
        format=fmt,
        content_type=CONTENT_TYPES[fmt],
        data=buffer.getvalue(),
        pixels=im,
    )
