"""The rules for S3 keys: where an image's thumbnails go, and which keys can be processed."""

from __future__ import annotations

from collections.abc import Sequence

from image_pipeline.errors import ImageRejected
from image_pipeline.models import EXTENSIONS, Size, ThumbnailSpec

MAX_KEY_BYTES = 1024  # S3 refuses longer keys (UTF-8 bytes), so no image can have one


THUMBNAILS_PREFIX = "thumbnails/"
# Thumbnails of an image moderation held back. As long as THUMBNAILS_PREFIX, so the key
# length check below holds for both.
QUARANTINE_PREFIX = "quarantine/"


def thumbnail_key(source_key: str, label: str, extension: str, *, quarantined: bool = False) -> str:
    """`thumbnails/{source_key}/{label}.{extension}` (`quarantine/...` when held back).

    The whole source key is kept, as is (no URL encoding or decoding), so `a/x.jpg` and
    `b/x.jpg` never share a thumbnail and every thumbnail of one image shares a prefix.
    """
    return f"{thumbnails_folder(source_key, quarantined=quarantined)}{label}.{extension}"


def thumbnails_folder(source_key: str, *, quarantined: bool = False) -> str:
    """The prefix every thumbnail of `source_key` shares, public or quarantined."""
    prefix = QUARANTINE_PREFIX if quarantined else THUMBNAILS_PREFIX
    return f"{prefix}{source_key}/"


def check_key(
    key: str, thumbnails: Sequence[Size | ThumbnailSpec], transparent_format: str
) -> None:
    """Refuse, before any work, a key whose thumbnails could not be stored or linked safely.

    A `.` or `..` segment is a valid S3 key, but HTTP clients and browsers resolve it in URLs,
    so a link to `thumbnails/uploads/a/../b.jpg/...` would show the thumbnail of `uploads/b.jpg`.
    The thumbnail keys add `thumbnails/` and `/{W}x{H}.{ext}` to the key; S3 refuses keys over
    1024 bytes, so a key too long for them fails here with the limit, not in an S3 error later.
    """
    if any(segment in (".", "..") for segment in key.split("/")):
        raise ImageRejected(
            "UnsafeKey",
            "The key has a '.' or '..' path segment, which URLs resolve to another path: "
            "its thumbnails could not be linked safely.",
        )
    specs = [t if isinstance(t, ThumbnailSpec) else ThumbnailSpec(t) for t in thumbnails]
    # A JPEG thumbnail of an image with transparency takes the transparent format instead.
    longest = max(
        len(thumbnail_key(key, spec.label, extension).encode())
        for spec in specs
        for extension in (EXTENSIONS[spec.format], EXTENSIONS[transparent_format])
    )
    if longest > MAX_KEY_BYTES:
        size = len(key.encode())
        raise ImageRejected(
            "KeyTooLong",
            f"The key is {size} bytes long: its thumbnail keys would be {longest} bytes, over "
            f"S3's limit of {MAX_KEY_BYTES}. Keys of up to "
            f"{size - (longest - MAX_KEY_BYTES)} bytes are processed.",
        )
