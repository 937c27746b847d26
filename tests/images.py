"""Test images made with Pillow on the fly; the factories return encoded bytes.

    jpeg()                                           # a 64x48 photo-like RGB JPEG
    jpeg((1600, 1200), exif_orientation=6, gps=(-33.8568, -151.2153), make="Apple")
    png(mode="RGBA"), gif(frames=3), heic(), avif(), tiff(mode="F"), ...
    png_bomb(30000, 30000)                           # a few hundred bytes, a huge header
    truncate(jpeg(), 0.5)                            # the first half of the file

Every picture has a pure red block in its top-left corner (`MARK`) on a smooth colour
background, so orientation tests can find where the corner went. Nothing here touches the
network or the disk.
"""

from __future__ import annotations

import io
import struct
import zlib
from fractions import Fraction
from typing import Any

import pillow_heif
from PIL import Image, ImageCms, ImageDraw

from image_pipeline.models import DecodedImage

Size = tuple[int, int]

MARK = (255, 0, 0)  # colour of the top-left corner block
MARK_FRACTION = 4  # the block is 1/4 of each side

pillow_heif.register_heif_opener()  # so heic() can save; validate registers it for reading


# --- pictures (PIL images) ---------------------------------------------------------------


def picture(size: Size = (64, 48), mode: str = "RGB", *, detail: bool = False) -> Image.Image:
    """A photo-like picture: colour gradients, a red top-left block; optionally fine detail.

    `mode` is reached with a plain Pillow conversion; RGBA/LA get a left-to-right alpha ramp
    (fully opaque on the left, where the mark is).
    """
    width, height = size
    red = Image.linear_gradient("L").rotate(90).resize(size)  # bright on the left
    green = Image.linear_gradient("L").resize(size)  # bright at the bottom
    blue = Image.new("L", size, 160)
    im = Image.merge("RGB", (red, green, blue))
    draw = ImageDraw.Draw(im)
    if detail:  # edges and stripes, so a poor resize shows up in a pixel comparison
        for x in range(0, width, max(2, width // 40)):
            draw.line([(x, height // 2), (x, height - 1)], fill=(20, 20, 20), width=1)
        draw.ellipse(
            [width // 2, height // 8, width - width // 8, height // 2], fill=(250, 250, 40)
        )
    draw.rectangle([0, 0, width // MARK_FRACTION - 1, height // MARK_FRACTION - 1], fill=MARK)
    if mode in ("RGBA", "LA"):
        alpha = Image.linear_gradient("L").rotate(-90).resize(size)  # 255 left, 0 right
        im.putalpha(alpha)
    return im if im.mode == mode else im.convert(mode)


def solid(size: Size, mode: str, value: Any) -> Image.Image:
    return Image.new(mode, size, value)


def grey16(size: Size = (32, 32), value: int = 32768) -> Image.Image:
    """A 16-bit greyscale picture (I;16) filled with `value` out of 65535."""
    return Image.new("I;16", size, value)


def transparent_palette(size: Size = (40, 30)) -> Image.Image:
    """A palette (P) picture whose right half is the transparent index."""
    im = picture(size).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    ImageDraw.Draw(im).rectangle([size[0] // 2, 0, size[0], size[1]], fill=15)
    im.info["transparency"] = 15
    return im


# --- EXIF -------------------------------------------------------------------------------


def exif(
    *,
    orientation: int | None = None,
    gps: tuple[float, float] | None = None,
    altitude: float | None = None,
    make: str | None = None,
    model: str | None = None,
    date_taken: str | None = None,
    date_time: str | None = None,
) -> Image.Exif:
    """An EXIF block; `gps` is (latitude, longitude) in signed degrees, `altitude` in metres."""
    block = Image.Exif()
    if orientation is not None:
        block[0x0112] = orientation
    if make is not None:
        block[0x010F] = make
    if model is not None:
        block[0x0110] = model
    if date_time is not None:
        block[0x0132] = date_time
    if date_taken is not None:
        block[0x8769] = {0x9003: date_taken}  # Exif IFD: DateTimeOriginal
    gps_ifd: dict[int, Any] = {}
    if gps is not None:
        latitude, longitude = gps
        gps_ifd |= {1: "S" if latitude < 0 else "N", 2: _dms(latitude)}
        gps_ifd |= {3: "W" if longitude < 0 else "E", 4: _dms(longitude)}
    if altitude is not None:
        gps_ifd |= {5: b"\x01" if altitude < 0 else b"\x00", 6: _rational(abs(altitude))}
    if gps_ifd:
        block[0x8825] = gps_ifd
    return block


def _dms(degrees: float) -> tuple[float, float, float]:
    value = Fraction(abs(degrees)).limit_denominator(10**7)
    whole = int(value)
    minutes = int((value - whole) * 60)
    seconds = (value - whole - Fraction(minutes, 60)) * 3600
    return (float(whole), float(minutes), _rational(float(seconds)))


def _rational(value: float) -> float:
    # Pillow stores floats as rationals; keep them exact enough for the round trip.
    return float(Fraction(value).limit_denominator(10**6))


def _exif_param(**fields: Any) -> dict[str, bytes]:
    """The `exif=` save parameter, or nothing when no field is set."""
    if all(value is None for value in fields.values()):
        return {}
    return {"exif": exif(**fields).tobytes()}


# --- encoders ---------------------------------------------------------------------------


def encode(im: Image.Image, fmt: str, **params: Any) -> bytes:
    buffer = io.BytesIO()
    im.save(buffer, fmt, **params)
    return buffer.getvalue()


def jpeg(
    size: Size = (64, 48),
    mode: str = "RGB",
    *,
    image: Image.Image | None = None,
    exif_orientation: int | None = None,
    gps: tuple[float, float] | None = None,
    altitude: float | None = None,
    make: str | None = None,
    model: str | None = None,
    date_taken: str | None = None,
    date_time: str | None = None,
    quality: int = 90,
    **params: Any,
) -> bytes:
    """A JPEG of `picture(size, mode)` (or `image`), with the EXIF fields given."""
    im = image if image is not None else picture(size, mode)
    fields = dict(
        orientation=exif_orientation,
        gps=gps,
        altitude=altitude,
        make=make,
        model=model,
        date_taken=date_taken,
        date_time=date_time,
    )
    return encode(im, "JPEG", quality=quality, **_exif_param(**fields), **params)


def cmyk_jpeg(size: Size = (64, 48), *, icc_profile: bytes | None = None) -> bytes:
    """A CMYK JPEG (Pillow writes Adobe-style inverted CMYK with an APP14 marker)."""
    params = {"icc_profile": icc_profile} if icc_profile else {}
    return encode(picture(size, "CMYK"), "JPEG", quality=95, **params)


def png(
    size: Size = (64, 48),
    mode: str = "RGB",
    *,
    image: Image.Image | None = None,
    exif_orientation: int | None = None,
    gps: tuple[float, float] | None = None,
    **params: Any,
) -> bytes:
    im = image if image is not None else picture(size, mode)
    return encode(im, "PNG", **_exif_param(orientation=exif_orientation, gps=gps), **params)


def webp(size: Size = (64, 48), mode: str = "RGB", **params: Any) -> bytes:
    return encode(picture(size, mode), "WEBP", quality=90, **params)


def gif(size: Size = (64, 48), frames: int = 1) -> bytes:
    """A GIF; with `frames` > 1 an animation whose later frames are rotated (corners black)."""
    first = picture(size).convert("P", palette=Image.Palette.ADAPTIVE)
    if frames == 1:
        return encode(first, "GIF")
    rest = [picture(size).rotate(10 * i).convert("P") for i in range(1, frames)]
    return encode(first, "GIF", save_all=True, append_images=rest, duration=100, loop=0)


def tiff(
    size: Size = (64, 48), mode: str = "RGB", *, image: Image.Image | None = None, **params: Any
) -> bytes:
    return encode(image if image is not None else picture(size, mode), "TIFF", **params)


def bmp(size: Size = (64, 48), mode: str = "RGB") -> bytes:
    return encode(picture(size, mode), "BMP")


def avif(size: Size = (64, 48), mode: str = "RGB", **params: Any) -> bytes:
    return encode(picture(size, mode), "AVIF", quality=90, **params)


def heic(size: Size = (64, 48), mode: str = "RGB", **params: Any) -> bytes:
    return encode(picture(size, mode), "HEIF", quality=90, **params)


def mpo(size: Size = (64, 48)) -> bytes:
    """A multi-picture JPEG as phones write them: the photo plus a second picture."""
    return encode(picture(size), "MPO", save_all=True, append_images=[picture(size).rotate(90)])


def ico(size: Size = (32, 32)) -> bytes:
    return encode(picture(size), "ICO")


def eps(size: Size = (16, 16)) -> bytes:
    return encode(picture(size), "EPS")


def psd(size: Size = (16, 16)) -> bytes:
    """A minimal Photoshop file (Pillow reads PSD but cannot write it): header, raw RGB."""
    width, height = size
    header = b"8BPS" + struct.pack(">H6xHIIHH", 1, 3, height, width, 8, 3)
    sections = struct.pack(">IIIH", 0, 0, 0, 0)  # no colour data, resources, layers; raw
    return header + sections + bytes(width * height * 3)


SVG = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16">'
    b'<rect width="16" height="16" fill="red"/></svg>\n'
)


# --- not images -------------------------------------------------------------------------

TEXT = b"Hello, this is a plain text file.\nIt is not an image.\n"
HTML = b"<!DOCTYPE html>\n<html><head><title>x</title></head><body><p>hi</p></body></html>\n"
XML = b'<?xml version="1.0"?>\n<note><to>you</to><body>not a picture</body></note>\n'


def pdf() -> bytes:
    """A minimal valid one-page PDF."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 72 72] >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


# --- broken and hostile files -----------------------------------------------------------


def truncate(data: bytes, fraction: float = 0.5) -> bytes:
    return data[: int(len(data) * fraction)]


def zero_tail(data: bytes, fraction: float = 0.5) -> bytes:
    """`data` with everything after `fraction` zeroed: the full length, a garbage payload."""
    keep = int(len(data) * fraction)
    return data[:keep] + bytes(len(data) - keep)


def tiff_with_broken_second_frame(size: Size = (64, 48)) -> bytes:
    """A two-page TIFF whose second page's header lost its ImageWidth tag."""
    data = bytearray(encode(picture(size), "TIFF", save_all=True, append_images=[picture(size)]))
    first = struct.unpack_from("<I", data, 4)[0]  # Pillow writes little-endian ("II")
    entries = struct.unpack_from("<H", data, first)[0]
    second = struct.unpack_from("<I", data, first + 2 + 12 * entries)[0]  # the next IFD
    for entry in range(struct.unpack_from("<H", data, second)[0]):
        position = second + 2 + 12 * entry
        if struct.unpack_from("<H", data, position)[0] == 256:  # ImageWidth
            struct.pack_into("<H", data, position, 0x7FFF)  # now an unknown private tag
    return bytes(data)


def bmp_variant(
    *, bits: int = 24, compression: int = 0, masks: tuple[int, ...] = (), size: Size = (4, 2)
) -> bytes:
    """A BMP written by hand: a BITMAPINFOHEADER with `compression` and `bits`, the colour
    `masks` after it (for compression 3, BI_BITFIELDS), then zeroed pixel rows.

    compression=4 (BI_JPEG) and 5 (BI_PNG) or masks like 4-4-4 are valid BMPs Pillow cannot read.
    """
    width, height = size
    rows = ((width * bits + 31) // 32 * 4) * height
    extra = struct.pack(f"<{len(masks)}I", *masks)
    offset = 14 + 40 + len(extra)
    info = struct.pack(
        "<IiiHHIIiiII", 40, width, height, 1, bits, compression, rows, 2835, 2835, 0, 0
    )
    head = b"BM" + struct.pack("<IHHI", offset + rows, 0, 0, offset)
    return head + info + extra + bytes(rows)


def tiff_compressed_as(compression: int, size: Size = (64, 48)) -> bytes:
    """A TIFF whose Compression tag says `compression` (its data stays uncompressed)."""
    data = bytearray(encode(picture(size), "TIFF"))
    first = struct.unpack_from("<I", data, 4)[0]  # Pillow writes little-endian ("II")
    for entry in range(struct.unpack_from("<H", data, first)[0]):
        position = first + 2 + 12 * entry
        if struct.unpack_from("<H", data, position)[0] == 259:  # Compression, a SHORT
            struct.pack_into("<H", data, position + 8, compression)
    return bytes(data)


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_bomb(width: int = 30000, height: int = 30000) -> bytes:
    """A valid PNG header declaring width x height RGB pixels, with a few hundred bytes of data.

    Only the first rows are present (the data stream simply ends): decoding it would allocate
    width*height*4 bytes before noticing, which is exactly what must never happen.
    """
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    rows = zlib.compress(b"\x00" + b"\x00" * (3 * width), 9)  # one black row
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", rows)
        + _png_chunk(b"IEND", b"")
    )


def gif_huge_frame(frame: Size = (60000, 60000), screen: Size = (10, 10)) -> bytes:
    """A GIF whose logical screen is tiny but whose first frame is declared enormous."""
    header = b"GIF89a" + struct.pack("<HHBBB", *screen, 0, 0, 0)  # no global colour table
    descriptor = b"," + struct.pack("<HHHHB", 0, 0, *frame, 0x80)  # local table of 2 colours
    palette = b"\x00\x00\x00\xff\xff\xff"
    data = b"\x02" + b"\x02\x44\x01" + b"\x00"  # LZW minimum code size, one sub-block, end
    return header + descriptor + palette + data + b";"


def with_jpeg_segment(data: bytes, marker: int, payload: bytes) -> bytes:
    """`data` (a JPEG) with one more APPn segment right after SOI."""
    return data[:2] + struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload + data[2:]


def with_png_chunk(data: bytes, kind: bytes, body: bytes) -> bytes:
    """`data` (a PNG) with one more chunk right before IEND."""
    end = data.rindex(b"IEND") - 4
    return data[:end] + _png_chunk(kind, body) + data[end:]


def corrupt_exif_jpeg(size: Size = (64, 48), payload: bytes | None = None) -> bytes:
    """A JPEG whose only EXIF block is garbage: not a TIFF header at all by default.

    The JFIF header states a DPI: without one Pillow reads the EXIF while opening, looking
    for a DPI, and quietly absorbs the error before the code under test ever sees it.
    """
    block = b"Exif\x00\x00" + (payload if payload is not None else b"XX\x00\x2a garbage")
    return with_jpeg_segment(jpeg(size, dpi=(72, 72)), 0xE1, block)


def srgb_profile() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


# --- reading back and DecodedImage --------------------------------------------------------


def opened(data: bytes) -> Image.Image:
    """The image in `data`, loaded (for assertions on thumbnails)."""
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


def decoded(
    pixels: Image.Image, *, format: str = "PNG", exif: dict[str, Any] | None = None
) -> DecodedImage:
    """A DecodedImage around `pixels`, as `decode` would make it, for tests past validation."""
    return DecodedImage(
        format=format,
        width=pixels.width,
        height=pixels.height,
        mode=pixels.mode,
        frame_count=1,
        pixels=pixels,
        exif=exif or {},
    )
