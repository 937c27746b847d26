"""Metadata: the original pipeline's Pillow properties, plus animation and EXIF essentials."""

from __future__ import annotations

from typing import Any

from image_pipeline.models import DecodedImage, SourceObject
from image_pipeline.settings import get_settings

GPS_PREFIX = "gps_"


def describe(source: SourceObject, image: DecodedImage) -> dict[str, Any]:
    """The `extracted_metadata` map, with the original's field names and meanings.

    `width_pixels`, `height_pixels` and `mode` describe the file as stored (as the original
    read them with Pillow), not the oriented, converted pixels; `display_width` and
    `display_height` are the size as shown, after EXIF orientation. `exif` is left out when the
    file has none, so the item carries no empty map. The GPS position is left out unless
    `record_gps` is on: what is never stored can never leak.
    """
    metadata: dict[str, Any] = {
        "filename": source.filename,
        "filesize_bytes": source.size,
        "format": image.format,
        "width_pixels": image.width,
        "height_pixels": image.height,
        "display_width": image.display_size[0],
        "display_height": image.display_size[1],
        "mode": image.mode,
        "is_animated": image.is_animated,
        "frame_count": image.frame_count,
    }
    if exif := _recordable(image.exif):
        metadata["exif"] = exif
    return metadata


def _recordable(exif: dict[str, Any]) -> dict[str, Any]:
    if get_settings().record_gps:
        return dict(exif)
    return {name: value for name, value in exif.items() if not name.startswith(GPS_PREFIX)}
