"""Validation of an upload: its key, its size, then one download and one decode."""

from __future__ import annotations

import os
import signal

from image_pipeline.imaging.decode import check_file_size, decode
from image_pipeline.keys import check_key
from image_pipeline.models import DecodedImage, SourceObject
from image_pipeline.settings import get_settings
from image_pipeline.sources import download


def validate(source: SourceObject) -> DecodedImage:
    """Download the object version the run is about, once, and decode it."""
    settings = get_settings()
    if settings.crash_marker and settings.crash_marker in source.key:
        # Chaos testing: what a segfault or the OOM killer does to the process, mid-step.
        os.kill(os.getpid(), signal.SIGKILL)
    specs = settings.thumbnail_specs
    check_key(source.key, specs, settings.transparent_format)
    check_file_size(source.size, settings.max_file_bytes)  # before paying for the download
    # A box that covers every configured box, so the reduced decode serves all of them.
    largest_box = (max(s.box[0] for s in specs), max(s.box[1] for s in specs))
    return decode(
        download(source),
        max_file_bytes=settings.max_file_bytes,
        max_pixels=settings.max_pixels,
        largest_box=largest_box,
        cover=any(spec.crop != "fit" for spec in specs),
    )
