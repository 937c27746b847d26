"""EXIF essentials: orientation, camera, date taken and GPS position, read defensively.

Bad EXIF only costs the EXIF, never the image: every reader here answers "absent" for a
block it cannot parse.
"""

from __future__ import annotations

import math
import struct
from datetime import datetime
from typing import Any

from PIL import ExifTags, Image

# What Pillow raises for an unreadable EXIF block: the list Pillow itself catches when it
# reads the DPI from EXIF (JpegImagePlugin._read_dpi_from_exif), plus OSError and IndexError
# for reads past the end. Bad EXIF only costs the EXIF, never the image.
EXIF_ERRORS = (
    SyntaxError,
    ValueError,
    TypeError,
    KeyError,
    ZeroDivisionError,
    struct.error,
    OSError,
    IndexError,
)

ORIENTATION_TAG = ExifTags.Base.Orientation

MAX_EXIF_TEXT = 256  # a Make or Model longer than this is junk, not worth storing


def orientation(im: Image.Image) -> int:
    """The EXIF orientation 1-8, 1 when absent or unreadable."""
    try:
        value = im.getexif().get(ORIENTATION_TAG, 1)
    except EXIF_ERRORS:
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def read_exif(im: Image.Image) -> dict[str, Any]:
    """Camera, date, orientation and GPS position, only the keys present; {} if unreadable."""
    try:
        exif = im.getexif()
        base = dict(exif)
        details = exif.get_ifd(ExifTags.IFD.Exif)
        gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    except EXIF_ERRORS:
        return {}
    found: dict[str, Any] = {
        "camera_make": _text(base.get(ExifTags.Base.Make)),
        "camera_model": _text(base.get(ExifTags.Base.Model)),
        "date_taken": _date(details.get(ExifTags.Base.DateTimeOriginal))
        or _date(base.get(ExifTags.Base.DateTime)),
        "orientation": _orientation_value(base.get(ORIENTATION_TAG)),
    }
    found.update(_gps(gps))
    return {key: value for key, value in found.items() if value is not None}


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if not isinstance(value, str):
        return None
    text = value.replace("\x00", "").strip()
    return text[:MAX_EXIF_TEXT] or None


def _date(value: Any) -> str | None:
    """EXIF "YYYY:MM:DD HH:MM:SS" as ISO 8601; other text as it is; blank or zero dates: None."""
    text = _text(value)
    if not text or text.strip("0: ") == "":
        return None
    try:
        return datetime.strptime(text, "%Y:%m:%d %H:%M:%S").isoformat()
    except ValueError:
        return text


def _orientation_value(value: Any) -> int | None:
    return value if isinstance(value, int) and 1 <= value <= 8 else None


def _gps(gps: dict[int, Any]) -> dict[str, float | None]:
    tags = ExifTags.GPS
    return {
        "gps_latitude": _degrees(gps.get(tags.GPSLatitude), gps.get(tags.GPSLatitudeRef), "S", 90),
        "gps_longitude": _degrees(
            gps.get(tags.GPSLongitude), gps.get(tags.GPSLongitudeRef), "W", 180
        ),
        "gps_altitude": _altitude(gps.get(tags.GPSAltitude), gps.get(tags.GPSAltitudeRef)),
    }


def _degrees(dms: Any, ref: Any, negative_ref: str, limit: float) -> float | None:
    """(degrees, minutes, seconds) and a N/S or E/W reference as signed decimal degrees."""
    if not isinstance(dms, tuple) or len(dms) != 3:
        return None
    parts = [_number(part) for part in dms]
    if None in parts:
        return None
    degrees, minutes, seconds = parts  # type: ignore[misc]
    value = degrees + minutes / 60 + seconds / 3600
    if not 0 <= value <= limit:
        return None
    return round(-value if (_text(ref) or "").upper() == negative_ref else value, 7)


def _altitude(value: Any, ref: Any) -> float | None:
    metres = _number(value)
    if metres is None:
        return None
    below_sea_level = ref in (1, b"\x01", "\x01", "1")  # GPSAltitudeRef 1 = below sea level
    return round(-abs(metres) if below_sea_level else metres, 3)


def _number(value: Any) -> float | None:
    """A finite float from an EXIF number or rational; None for x/0 or junk."""
    try:
        number = float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return number if math.isfinite(number) else None
