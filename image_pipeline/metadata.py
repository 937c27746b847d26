"""Metadata: the original pipeline's Pillow properties, plus animation and EXIF essentials."""

from __future__ import annotations

from typing import Any

from image_pipeline.models import DecodedImage, SourceObject


def describe(source: SourceObject, image: DecodedImage) -> dict[str, Any]:
    """The `extracted_metadata` map, with the original's field names and meanings.

    `width_pixels`, `height_pixels` and `mode` describe the file as stored (as the original
    read them with Pillow), not the oriented, converted pixels. `exif` is left out when the
    file has none, so the item carries no empty map.
    """
    metadata: dict[str, Any] = {
        "filename": source.filename,
        "filesize_bytes": source.size,
        "format": image.format,
        "width_pixels": image.width,
        "height_pixels": image.height,
        "mode": image.mode,
        "is_animated": image.is_animated,
        "frame_count": image.frame_count,
    }
    if image.exif:
        metadata["exif"] = dict(image.exif)
    return metadata
