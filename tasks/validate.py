"""Validation: download the upload once, identify it by content, decode it safely.

`decode` is pure (bytes in, `DecodedImage` or `ImageRejected` out); the `validate` task
adds the S3 download.
"""

from __future__ import annotations

import io
import logging
import math
import struct
import zlib
from datetime import datetime
from typing import Any

import pillow_heif
from botocore.exceptions import ClientError
from PIL import ExifTags, Image, ImageCms, ImageFile, UnidentifiedImageError, features
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.aws import client, error_code
from tasks.errors import ImageRejected, Superseded
from tasks.models import EXTENSIONS, DecodedImage, Size, SourceObject
from tasks.retry import TRANSIENT_RETRIES
from tasks.settings import get_settings
from tasks.thumbnails import MAX_S3_KEY_BYTES, fit_within, thumbnail_key

logger = logging.getLogger(__name__)

# HEIC/HEIF come from pillow-heif. AVIF comes from Pillow itself (its wheels bundle libavif
# since 11.2); pillow-heif 1.x has no AVIF opener any more, so there is no fallback to register.
pillow_heif.register_heif_opener()

# Pillow's own bomb limit is process-wide and fires inside Image.open, before we can see the
# size: a warning from 89 MP, an error from 179 MP, whatever `max_pixels` says. `decode` makes
# the same check on the header, at the same moment (before any pixel is decoded), against the
# configured limit and with a message users understand, so Pillow's is switched off rather
# than raced with. `decode` still converts Pillow's error should anything re-enable it.
Image.MAX_IMAGE_PIXELS = None

# Pillow names of the accepted formats; the allow-list is also passed to Image.open so no other
# parser ever sees the bytes. JPEG's opener returns "MPO" for multi-picture (phone) JPEGs.
# A Pillow built without libavif would refuse AVIF as UnsupportedFormat rather than crash.
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "TIFF", "BMP", "HEIF") + (
    ("AVIF",) if features.check("avif") else ()
)
JPEG_FORMATS = ("JPEG", "MPO")

# What Pillow and its plugins raise for bad data while parsing or decoding; libavif's failures
# ("Failed to decode image: ...") arrive as RuntimeError. Anything else (MemoryError, a bug of
# ours) is not the image's fault and must surface as it is.
DECODE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
    zlib.error,
    IndexError,
    RuntimeError,
)

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
# EXIF orientation → the transpose that makes the image upright (as ImageOps.exif_transpose).
TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
SWAPS_AXES = frozenset({5, 6, 7, 8})

MAX_EXIF_TEXT = 256  # a Make or Model longer than this is junk, not worth storing
SRGB = ImageCms.createProfile("sRGB")


def decode(data: bytes, *, max_file_bytes: int, max_pixels: int, largest_box: Size) -> DecodedImage:
    """Identify `data` by content, check the limits on the header, decode the first frame.

    Raises `ImageRejected` for anything wrong with the bytes; nothing else for bad input.
    `largest_box` bounds every thumbnail: JPEGs are decoded at a reduced scale that still
    covers it after orientation.
    """
    _check_file_size(len(data), max_file_bytes)
    with _open(data) as im:
        _check_pixels(im.size, max_pixels)
        stored = (im.format or "", im.width, im.height, im.mode)
        if im.format in JPEG_FORMATS:  # a JPEG's EXIF is read with its header, before load
            _draft(im, _orientation(im), largest_box)
        _load(im)
        # Other formats' EXIF only after load: PNG keeps eXIf after the pixel data and would
        # load (and raise for truncation) inside getexif, where it would pass as bad EXIF.
        orientation = _orientation(im)
        exif = read_exif(im)
        pixels = _upright(_to_output_mode(im), orientation)
        frame_count = _frame_count(im)
    pixels.info = {}  # metadata stays here, in `exif`; nothing rides along into thumbnails
    fmt, width, height, mode = stored
    return DecodedImage(fmt, width, height, mode, frame_count, pixels, exif)


# --- the key -------------------------------------------------------------------------------


def check_key(key: str, boxes: list[Size], transparent_format: str) -> None:
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
    longest = max(
        len(thumbnail_key(key, f"{w}x{h}", extension).encode())
        for w, h in boxes
        for extension in (EXTENSIONS["JPEG"], EXTENSIONS[transparent_format])
    )
    if longest > MAX_S3_KEY_BYTES:
        size = len(key.encode())
        raise ImageRejected(
            "KeyTooLong",
            f"The key is {size} bytes long: its thumbnail keys would be {longest} bytes, over "
            f"S3's limit of {MAX_S3_KEY_BYTES}. Keys of up to "
            f"{size - (longest - MAX_S3_KEY_BYTES)} bytes are processed.",
        )


# --- identification and limits -----------------------------------------------------------


def _check_file_size(size: int, max_file_bytes: int) -> None:
    if size == 0:
        raise ImageRejected("EmptyFile", "The file is 0 bytes long.")
    if size > max_file_bytes:
        raise ImageRejected(
            "FileTooLarge",
            f"The file is {_mb(size)} ({size} bytes), over the limit of {_mb(max_file_bytes)}.",
        )


def _mb(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


def _open(data: bytes) -> ImageFile.ImageFile:
    """Open with the accepted formats only; this reads the header, not the pixels."""
    try:
        return Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
    except Image.DecompressionBombError as exc:
        raise ImageRejected(
            "TooManyPixels", "The image has too many pixels to be processed safely."
        ) from exc
    except UnidentifiedImageError:
        raise _unaccepted(data) from None
    except DECODE_ERRORS as exc:
        # An accepted format recognised its signature but could not read the header.
        raise _corrupt(exc) from exc


def _unaccepted(data: bytes) -> ImageRejected:
    """Why the accepted formats refused the bytes: a broken header, another format, or no image.

    Pillow turns a header its plugin cannot parse into "unidentified"; the plugins' own
    signature checks tell a damaged JPEG from a text file.
    """
    for fmt in ACCEPTED_FORMATS:
        _factory, accept = Image.OPEN[fmt]  # registered: Image.open just looked them all up
        verdict = accept(data[:16]) if accept else False
        if verdict and not isinstance(verdict, str):  # a str is Pillow's "plugin missing" note
            return ImageRejected(
                "CorruptImage", f"The file has a {fmt} signature but its header is damaged."
            )
    if data.startswith(b"%PDF-"):  # Pillow writes PDFs but cannot read them
        return _unsupported("PDF")
    try:
        # Every Pillow plugin, header only, only to name the format in the message.
        with Image.open(io.BytesIO(data)) as other:
            return _unsupported(other.format or "unknown")
    except Exception as exc:
        # Plugins we never accept are not hardened alike (DDS raises NotImplementedError on
        # junk): whatever they raise only means the file is no image we can name.
        logger.debug("No Pillow plugin identifies the file: %r", exc)
        return ImageRejected(
            "NotAnImage", "The file is not an image: its content matches no known image format."
        )


def _unsupported(fmt: str) -> ImageRejected:
    accepted = ", ".join(ACCEPTED_FORMATS)
    return ImageRejected(
        "UnsupportedFormat",
        f"The file is in {fmt} format, which is not accepted (accepted: {accepted}).",
    )


def _corrupt(exc: BaseException) -> ImageRejected:
    detail = " ".join(str(exc).split())  # libheif's messages end in a newline
    return ImageRejected("CorruptImage", f"The image data is truncated or corrupt ({detail}).")


def _check_pixels(size: Size, max_pixels: int) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise ImageRejected(
            "CorruptImage", f"The image header declares a size of {width}x{height} pixels."
        )
    if width * height > max_pixels:
        raise ImageRejected(
            "TooManyPixels",
            f"The image is {width}x{height} pixels ({width * height / 1e6:.1f} megapixels), "
            f"over the limit of {max_pixels / 1e6:.1f} megapixels.",
        )


# --- decoding ------------------------------------------------------------------------------


def _orientation(im: Image.Image) -> int:
    """The EXIF orientation 1-8, 1 when absent or unreadable."""
    try:
        value = im.getexif().get(ORIENTATION_TAG, 1)
    except EXIF_ERRORS:
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _draft(im: ImageFile.ImageFile, orientation: int, largest_box: Size) -> None:
    """Let libjpeg decode at 1/2, 1/4 or 1/8 scale, never below the largest thumbnail.

    The thumbnail is fitted to the image as displayed, so for a 90-degree orientation the box
    is matched against the swapped axes and the result swapped back to stored axes. Pillow's
    draft picks the largest reduction that keeps both axes at least this size.
    """
    swap = orientation in SWAPS_AXES
    shown = (im.height, im.width) if swap else im.size
    needed = fit_within(shown, largest_box)
    if needed != shown:
        im.draft(None, (needed[1], needed[0]) if swap else needed)


def _load(im: ImageFile.ImageFile) -> None:
    # LOAD_TRUNCATED_IMAGES stays False, so a truncated file raises here instead of
    # yielding a half-grey picture.
    try:
        im.load()
    except Image.DecompressionBombError as exc:
        raise ImageRejected(
            "TooManyPixels", "The image has too many pixels to be processed safely."
        ) from exc
    except DECODE_ERRORS as exc:
        raise _corrupt(exc) from exc


def _frame_count(im: Image.Image) -> int:
    """Frames of an animation; 1 for MPO, whose extra pictures are previews or stereo views."""
    if im.format == "MPO":
        return 1
    try:
        return int(getattr(im, "n_frames", 1))
    except (*DECODE_ERRORS, TypeError):
        # Counting parses every frame's header; a broken later frame does not spoil the first
        # one, which is all that is shown. (TypeError is how Pillow's TIFF reader reports a
        # header without dimensions; Image.open treats it as unreadable too.)
        return 1


def _to_output_mode(im: Image.Image) -> Image.Image:
    """The loaded frame as RGB, RGBA, L or LA, in sRGB where a profile says otherwise."""
    mode = im.mode
    # has_transparency_data: an alpha band, a tRNS colour key or a palette with transparency.
    alpha = im.has_transparency_data
    if mode in ("CMYK", "RGB", "RGBA"):
        out = _to_srgb(im)
    elif mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        out = _deep_to_l(im)
    elif mode in ("1", "L", "LA"):
        out = im.convert("LA" if alpha else "L")
    else:  # P, PA, La, RGBa, YCbCr, LAB, HSV, RGBX, ...
        out = im.convert("RGBA" if alpha else "RGB")
    return _drop_opaque_alpha(out)


def _to_srgb(im: Image.Image) -> Image.Image:
    """Apply the embedded ICC profile (CMYK press profiles, Display P3, Adobe RGB) to sRGB.

    Thumbnails carry no profile, so without this they would show the wrong colours.
    """
    if im.mode == "RGB" and im.has_transparency_data:
        im = im.convert("RGBA")  # a tRNS colour key becomes real alpha
    out_mode = "RGB" if im.mode == "CMYK" else im.mode
    icc = im.info.get("icc_profile")
    if icc:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            converted = ImageCms.profileToProfile(im, source, SRGB, outputMode=out_mode)
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
            # A broken or mismatched profile (a grey profile on RGB): plain conversion is
            # what every viewer that ignores profiles shows, so it is an acceptable fallback.
            pass
        else:
            assert converted is not None  # inPlace=False always returns an image
            return converted
    return im.convert(out_mode)


def _deep_to_l(im: Image.Image) -> Image.Image:
    """16/32-bit grey or float to 8-bit L by scaling, not clipping (clipping turns mid-grey white).

    16-bit modes use their full range; 32-bit integers and floats are scaled from the range
    their values suggest: 0-1 (float data), 0-255, 0-65535, else their own min-max.
    """
    if im.mode.startswith("I;16"):
        low, high = 0.0, 65535.0
        im = im.convert("I")
    else:
        low, high = _value_range(im)
    if im.mode == "I" and (low, high) == (0.0, 255.0):
        return im.convert("L")
    scale = 255.0 / (high - low) if high > low else 0.0
    # + 0.5: the float to L conversion truncates, and 32768/65535 should be 128, not 127.
    floats = im.convert("F").point(lambda v: (v - low) * scale + 0.5)
    return floats.convert("L")


def _value_range(im: Image.Image) -> tuple[float, float]:
    lowest, highest = im.getextrema()
    if not (math.isfinite(lowest) and math.isfinite(highest)):
        return 0.0, 1.0 if im.mode == "F" else 65535.0
    for low, high in ((0.0, 1.0), (0.0, 255.0), (0.0, 65535.0)):
        if low <= lowest and highest <= high:
            return low, high
    return float(lowest), float(highest)


def _drop_opaque_alpha(im: Image.Image) -> Image.Image:
    """An alpha channel that is opaque everywhere is dropped, so the thumbnail can be a JPEG."""
    if im.mode in ("RGBA", "LA") and im.getchannel("A").getextrema() == (255, 255):
        return im.convert(im.mode[:-1])
    return im


def _upright(im: Image.Image, orientation: int) -> Image.Image:
    # The orientation was read once, safely; ImageOps.exif_transpose would read the EXIF again
    # (raising on a corrupt block) and rewrite metadata we throw away anyway.
    transpose = TRANSPOSE.get(orientation)
    return im.transpose(transpose) if transpose is not None else im


# --- EXIF essentials -----------------------------------------------------------------------


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


# --- the task ------------------------------------------------------------------------------


@task(name="validate", **TRANSIENT_RETRIES, cache_policy=NO_CACHE, persist_result=False)
def validate(source: SourceObject) -> DecodedImage:
    """Download the object version the run is about, once, and decode it."""
    settings = get_settings()
    check_key(source.key, settings.thumbnail_sizes, settings.transparent_format)
    _check_file_size(source.size, settings.max_file_bytes)  # before paying for the download
    data = download(source)
    sizes = settings.thumbnail_sizes
    # A box that covers every configured box, so the reduced decode serves all of them.
    largest_box = (max(w for w, _ in sizes), max(h for _, h in sizes))
    return decode(
        data,
        max_file_bytes=settings.max_file_bytes,
        max_pixels=settings.max_pixels,
        largest_box=largest_box,
    )


def download(source: SourceObject) -> bytes:
    """The object's bytes, only if it still has the ETag the run is about."""
    try:
        response = client("s3").get_object(
            Bucket=source.bucket, Key=source.key, IfMatch=f'"{source.etag}"'
        )
    except ClientError as exc:
        # 412: re-uploaded since; 404: deleted since. A newer event covers either case.
        if error_code(exc) in ("PreconditionFailed", "412", "NoSuchKey", "404", "NotFound"):
            raise Superseded(
                f"s3://{source.bucket}/{source.key} changed since ETag {source.etag}."
            ) from exc
        raise
    return response["Body"].read()
