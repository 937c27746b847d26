"""Validation of an upload: its key, its size, then one download and one decode."""

from __future__ import annotations

from image_pipeline.imaging.decode import check_file_size, decode
from image_pipeline.keys import check_key
from image_pipeline.models import DecodedImage, SourceObject
from image_pipeline.settings import get_settings
from image_pipeline.sources import download


def validate(source: SourceObject) -> DecodedImage:
    """Download the object version the run is about, once, and decode it."""
    settings = get_settings()
    check_key(source.key, settings.thumbnail_sizes, settings.transparent_format)
    check_file_size(source.size, settings.max_file_bytes)  # before paying for the download
    sizes = settings.thumbnail_sizes
    # A box that covers every configured box, so the reduced decode serves all of them.
    largest_box = (max(w for w, _ in sizes), max(h for _, h in sizes))
    return decode(
        download(source),
        max_file_bytes=settings.max_file_bytes,
        max_pixels=settings.max_pixels,
        largest_box=largest_box,
    )
