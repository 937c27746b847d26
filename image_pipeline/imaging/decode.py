"""Decoding: identify the bytes by their signature, check the limits on the header, decode once.

`decode` is pure: bytes in, `DecodedImage` or `ImageRejected` out.
"""

from __future__ import annotations

import importlib
import io
import math
import re
import struct
import zlib

import pillow_heif
from PIL import Image, ImageCms, ImageFile, TiffImagePlugin, UnidentifiedImageError, features

from image_pipeline.errors import ImageRejected
from image_pipeline.imaging import exif
from image_pipeline.imaging.render import cover_size, fit_within
from image_pipeline.models import DecodedImage, Size

# Importing a plugin registers it: the accepted formats' plugins, and no others.
for _plugin in ("Avif", "Bmp", "Gif", "Jpeg", "Png", "Tiff", "WebP"):
    importlib.import_module(f"PIL.{_plugin}ImagePlugin")
# HEIC/HEIF come from pillow-heif. AVIF comes from Pillow itself (its wheels bundle libavif
# since 11.2); pillow-heif 1.x has no AVIF opener any more, so there is no fallback to register.
pillow_heif.register_heif_opener()

# Pillow names of the accepted formats, whose plugins are registered above. Only their
# signature checks ever see the bytes, and only the plugin whose signature matches parses
# them. JPEG's opener returns "MPO" for multi-picture (phone) JPEGs. A Pillow built without
# libavif would refuse AVIF as UnsupportedFormat rather than crash.
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "TIFF", "BMP", "HEIF") + (
    ("AVIF",) if features.check("avif") else ()
)
JPEG_FORMATS = ("JPEG", "MPO")
SIGNATURE_BYTES = 16  # what Image.open gives the plugins' signature checks

# Formats we refuse, named in the message by their signature alone: a file we do not accept
# is compared with these bytes and never given to a parser.
OTHER_SIGNATURES = (
    (b"%PDF-", "PDF"),
    (b"%!PS", "PostScript (EPS)"),
    (b"\xc5\xd0\xd3\xc6", "PostScript (EPS)"),  # DOS EPS: a binary header, then PostScript
    (b"8BPS", "PSD"),
    (b"\x00\x00\x01\x00", "ICO"),
    (b"\x00\x00\x02\x00", "CUR"),
    (b"icns", "ICNS"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000"),
    (b"\xff\x4f\xff\x51", "JPEG 2000"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "JPEG XL"),
    (b"\xff\x0a", "JPEG XL"),
    (b"DDS ", "DDS"),
    (b"qoif", "QOI"),
    (b"gimp xcf", "XCF"),
    (b"v/1\x01", "OpenEXR"),
    (b"#?RADIANCE", "Radiance HDR"),
)
NETPBM = re.compile(rb"P[1-7]\s")
AVIF_BRANDS = (b"avif", b"avis")  # only reached when this Pillow cannot read AVIF
SVG_SCAN_BYTES = 4096  # where an SVG's root element must start, after the XML prolog
# Pillow's words for a valid file in a variant of an accepted format that it cannot read
# (JPEG or PNG inside a BMP, an unusual bitfields mask, 64-bit BMP, JPEG XR in a TIFF): not
# damage, so UnsupportedFormat with Pillow's message, which names the variant. Other
# "Unsupported" messages (a BMP header size or palette size no writer makes) stay corruption.
UNSUPPORTED_VARIANTS = (
    "Unsupported BMP bitfields layout",
    "Unsupported BMP compression",
    "Unsupported BMP pixel depth",
    "Windows Media Photo files not yet supported",
)
# TIFF compression schemes Pillow does not know (named when a TIFF uses one); other codes
# are called "not known to Pillow".
TIFF_COMPRESSIONS = {
    33003: "JPEG 2000 (Aperio)",
    33005: "JPEG 2000 (Aperio)",
    34712: "JPEG 2000",
    34887: "LERC",
    34892: "lossy JPEG (DNG)",
    50002: "JPEG XL",
}
# BMP compression codes Pillow has no decoder for, named in the message (BI_JPEG, BI_PNG).
BMP_COMPRESSIONS = {"(4)": "(4: JPEG inside BMP)", "(5)": "(5: PNG inside BMP)"}

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
# Pillow's bomb check: the error above twice its limit, and the warning above it when
# warnings are turned into errors.
BOMB = (Image.DecompressionBombError, Image.DecompressionBombWarning)
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

SRGB = ImageCms.createProfile("sRGB")


def decode(
    data: bytes, *, max_file_bytes: int, max_pixels: int, largest_box: Size, cover: bool = False
) -> DecodedImage:
    """Identify `data` by its signature, check the limits on the header, decode the first frame.

    Raises `ImageRejected` for anything wrong with the bytes; nothing else for bad input.
    `largest_box` bounds every thumbnail: JPEGs are decoded at a reduced scale that still
    fits it after orientation, or covers it when a thumbnail is cropped (`cover`).
    """
    check_file_size(len(data), max_file_bytes)
    _set_pillows_limit(max_pixels)
    with _open(data, max_pixels) as im:
        _check_pixels(im.size, max_pixels)
        stored = (im.format or "", im.width, im.height, im.mode)
        if im.format in JPEG_FORMATS:  # a JPEG's EXIF is read with its header, before load
            _draft(im, exif.orientation(im), largest_box, cover)
        _load(im, max_pixels)
        # Other formats' EXIF only after load: PNG keeps eXIf after the pixel data and would
        # load (and raise for truncation) inside getexif, where it would pass as bad EXIF.
        orientation = exif.orientation(im)
        exif_data = exif.read_exif(im)
        pixels = _upright(_to_output_mode(im), orientation)
        frame_count = _frame_count(im)
    pixels.info = {}  # metadata stays here, in `exif_data`; nothing rides along into thumbnails
    fmt, width, height, mode = stored
    return DecodedImage(fmt, width, height, mode, frame_count, pixels, exif_data, orientation)


# --- identification and limits -----------------------------------------------------------


def check_file_size(size: int, max_file_bytes: int) -> None:
    if size == 0:
        raise ImageRejected("EmptyFile", "The file is 0 bytes long.")
    if size > max_file_bytes:
        raise ImageRejected(
            "FileTooLarge",
            f"The file is {_mb(size)} ({size} bytes), over the limit of {_mb(max_file_bytes)}.",
        )


def _mb(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


def _set_pillows_limit(max_pixels: int) -> None:
    """Keep Pillow's own bomb check on, as a backstop that follows our limit.

    It warns above `max_pixels` and refuses above twice it, inside `Image.open` and the
    plugins, some of which allocate before `_check_pixels` can look (a WebP's canvas). Up to
    twice the limit, ours still refuses the image, with the clearer message (its size).
    Process-wide, like the setting it comes from.
    """
    Image.MAX_IMAGE_PIXELS = max_pixels


def _open(data: bytes, max_pixels: int) -> ImageFile.ImageFile:
    """Open with the plugin the signature names, and no other; this reads the header only."""
    formats = _sniff(data)
    if not formats:
        raise _unaccepted(data)
    try:
        return Image.open(io.BytesIO(data), formats=formats)
    except BOMB as exc:
        raise _bomb(exc, max_pixels) from exc
    except UnidentifiedImageError:
        # Pillow's word for a plugin refusing the header behind its own signature.
        raise _refused_header(data, formats[0]) from None
    except DECODE_ERRORS as exc:
        raise _decode_error(exc, formats[0]) from exc


def _refused_header(data: bytes, fmt: str) -> ImageRejected:
    """A TIFF compressed with a scheme Pillow does not know is a variant; else damage."""
    compression = _tiff_compression(data) if fmt == "TIFF" else None
    if compression is not None and compression not in TiffImagePlugin.COMPRESSION_INFO:
        named = TIFF_COMPRESSIONS.get(compression, "not known to Pillow")
        return ImageRejected(
            "UnsupportedFormat",
            f"The file is a TIFF in a variant that cannot be read (compression {compression}: "
            f"{named}).",
        )
    return ImageRejected(
        "CorruptImage", f"The file has a {fmt} signature but its header is damaged."
    )


def _tiff_compression(data: bytes) -> int | None:
    """The Compression tag of a TIFF's first directory, read by Pillow's TIFF code; None when
    the directory cannot be read."""
    header = data[:16] if data[2:3] == b"+" else data[:8]  # BigTIFF's header is 16 bytes
    try:
        directory = TiffImagePlugin.ImageFileDirectory_v2(header)
        stream = io.BytesIO(data)
        stream.seek(directory.next)
        directory.load(stream)
        compression = directory.get(TiffImagePlugin.COMPRESSION)
    except (*DECODE_ERRORS, KeyError, TypeError, UserWarning):  # warnings may be errors
        return None
    return compression if isinstance(compression, int) else None


def _sniff(data: bytes) -> tuple[str, ...]:
    """The accepted formats whose signature `data` carries (AVIF and HEIF share `mif1`)."""
    prefix = data[:SIGNATURE_BYTES]
    return tuple(fmt for fmt in ACCEPTED_FORMATS if _signature_matches(fmt, prefix))


def _signature_matches(fmt: str, prefix: bytes) -> bool:
    _factory, accept = Image.OPEN[fmt]
    verdict = accept(prefix) if accept else False
    return bool(verdict) and not isinstance(verdict, str)  # a str: Pillow's "plugin missing"


def _unaccepted(data: bytes) -> ImageRejected:
    """No accepted signature: another format, named from its signature alone, or no image."""
    fmt = _other_format(data)
    if fmt is None:
        return ImageRejected(
            "NotAnImage",
            "The file is not an image in an accepted format: its content starts with no "
            "known image signature.",
        )
    return _unsupported(fmt)


def _other_format(data: bytes) -> str | None:
    for signature, name in OTHER_SIGNATURES:
        if data.startswith(signature):
            return name
    if NETPBM.match(data):
        return "Netpbm"
    if data[4:8] == b"ftyp" and data[8:12] in AVIF_BRANDS:
        return "AVIF"
    head = data[:SVG_SCAN_BYTES].lstrip(b"\xef\xbb\xbf \t\r\n")  # BOM, blank lines
    if head.startswith((b"<?xml", b"<svg", b"<!DOCTYPE svg")) and b"<svg" in head:
        return "SVG"
    return None


def _unsupported(fmt: str) -> ImageRejected:
    accepted = ", ".join(ACCEPTED_FORMATS)
    return ImageRejected(
        "UnsupportedFormat",
        f"The file is in {fmt} format, which is not accepted (accepted: {accepted}).",
    )


def _decode_error(exc: BaseException, fmt: str) -> ImageRejected:
    """Pillow refused the file: a variant it cannot read (named), else damage."""
    detail = " ".join(str(exc).split())
    if isinstance(exc, OSError) and detail.startswith(UNSUPPORTED_VARIANTS):
        for code, named in BMP_COMPRESSIONS.items():
            detail = detail.replace(f"compression {code}", f"compression {named}")
        return ImageRejected(
            "UnsupportedFormat",
            f"The file is a {fmt} in a variant that cannot be read ({detail}).",
        )
    return _corrupt(exc)


def _corrupt(exc: BaseException) -> ImageRejected:
    detail = " ".join(str(exc).split())  # libheif's messages end in a newline
    return ImageRejected("CorruptImage", f"The image data is truncated or corrupt ({detail}).")


def _bomb(exc: Exception, max_pixels: int) -> ImageRejected:
    """Pillow's own check refused the image (or warned, with warnings turned into errors)."""
    over = "twice " if isinstance(exc, Image.DecompressionBombError) else ""
    return ImageRejected(
        "TooManyPixels",
        f"The image has more than {over}the limit of {max_pixels / 1e6:.1f} megapixels.",
    )


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


def _draft(im: ImageFile.ImageFile, orientation: int, largest_box: Size, cover: bool) -> None:
    """Let libjpeg decode at 1/2, 1/4 or 1/8 scale, never below the largest thumbnail.

    The thumbnail is fitted to the image as displayed, so for a 90-degree orientation the box
    is matched against the swapped axes and the result swapped back to stored axes. Pillow's
    draft picks the largest reduction that keeps both axes at least this size.
    """
    swap = orientation in SWAPS_AXES
    shown = (im.height, im.width) if swap else im.size
    needed = (cover_size if cover else fit_within)(shown, largest_box)
    if needed != shown:
        im.draft(None, (needed[1], needed[0]) if swap else needed)


def _load(im: ImageFile.ImageFile, max_pixels: int) -> None:
    # LOAD_TRUNCATED_IMAGES stays False, so a truncated file raises here instead of
    # yielding a half-grey picture.
    try:
        im.load()
    except BOMB as exc:
        raise _bomb(exc, max_pixels) from exc
    except DECODE_ERRORS as exc:
        raise _decode_error(exc, im.format or "file") from exc


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
