"""Rendering: fit the decoded pixels inside each box and encode them, without any I/O."""

from __future__ import annotations

import io

from PIL import Image

from image_pipeline.models import DecodedImage, RenderedThumbnail, Size

CONTENT_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}

# Lossy WebP with alpha; higher than Pillow's default 80 because logos and line art are the
# usual transparent uploads and show artefacts first.
WEBP_QUALITY = 90

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


def render_thumbnails(
    image: DecodedImage,
    boxes: list[Size],
    *,
    transparent_format: str = "PNG",
    jpeg_quality: int = 85,
) -> list[RenderedThumbnail]:
    """One encoded thumbnail per box, in the order of `boxes`."""
    targets = [fit_within(image.pixels.size, box) for box in boxes]
    resized = _resize_cascade(image.pixels, targets)
    return [
        _encode(box, resized[target], transparent_format, jpeg_quality)
        for box, target in zip(boxes, targets, strict=True)
    ]


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


def _encode(
    box: Size, im: Image.Image, transparent_format: str, jpeg_quality: int
) -> RenderedThumbnail:
    if im.mode in ("RGBA", "LA"):
        fmt = transparent_format
        if fmt == "WEBP" and im.mode == "LA":
            im = im.convert("RGBA")  # WebP has no grey+alpha mode
        options: dict[str, object] = {"quality": WEBP_QUALITY} if fmt == "WEBP" else {}
    else:
        fmt = "JPEG"
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
        box=box,
        width=im.width,
        height=im.height,
        format=fmt,
        content_type=CONTENT_TYPES[fmt],
        data=buffer.getvalue(),
    )
