"""decode(): identification by content, limits, decoding."""

from __future__ import annotations

import io
import random
import warnings
from typing import Any

import pytest
from PIL import Image, ImageFile, ImageOps

from image_pipeline.errors import ImageRejected
from image_pipeline.imaging import decode as decode_module
from image_pipeline.imaging.decode import ACCEPTED_FORMATS, decode
from image_pipeline.imaging.exif import read_exif
from image_pipeline.imaging.render import fit_within
from image_pipeline.models import DecodedImage
from tests import images

MB = 1024 * 1024
LIMITS: dict[str, Any] = dict(max_file_bytes=50 * MB, max_pixels=100_000_000)
LIMITS: dict[str, Any] = dict(max_file_bytes=50 * MB, max_pixels=100_000_000)


def run(data: bytes, largest_box: tuple[int, int] = (640, 480), **limits: Any) -> DecodedImage:
    return decode(data, largest_box=largest_box, **(LIMITS | limits))


def rejected(data: bytes, **limits: Any) -> ImageRejected:
    with pytest.raises(ImageRejected) as caught:
        run(data, **limits)
    return caught.value


def is_red(pixel: tuple[int, ...], tolerance: int = 40) -> bool:
    r, g, b = pixel[:3]
    return r > 255 - tolerance and g < tolerance and b < tolerance


# --- accepted formats and modes -------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "fmt"),
    [
        (images.jpeg, "JPEG"),
        (images.png, "PNG"),
        (images.webp, "WEBP"),
        (images.gif, "GIF"),
        (images.tiff, "TIFF"),
        (images.bmp, "BMP"),
        (images.avif, "AVIF"),
        (images.heic, "HEIF"),
        (images.mpo, "MPO"),
    ],
)
def test_every_accepted_format_decodes(make: Any, fmt: str) -> None:
    image = run(make((64, 48)))

    assert image.format == fmt
    assert (image.width, image.height) == (64, 48)
    assert image.pixels.mode == "RGB"
    assert image.pixels.size == (64, 48)
    assert image.frame_count == 1  # an MPO's second picture is not an animation frame
    assert is_red(image.pixels.getpixel((2, 2)))  # the picture itself, not a blank


@pytest.mark.parametrize(
    ("data", "stored_mode", "pixels_mode"),
    [
        (images.png(mode="RGB"), "RGB", "RGB"),
        (images.png(mode="RGBA"), "RGBA", "RGBA"),
        (images.png(image=images.picture().convert("RGBA")), "RGBA", "RGB"),  # opaque alpha
        (images.png(mode="L"), "L", "L"),
        (images.png(mode="LA"), "LA", "LA"),
        (images.png(image=images.picture().convert("LA")), "LA", "L"),  # opaque alpha
        (images.png(mode="P"), "P", "RGB"),
        (images.png(image=images.transparent_palette()), "P", "RGBA"),
        (images.gif(), "P", "RGB"),
        (images.png(image=images.solid((8, 8), "L", 7), transparency=7), "L", "LA"),  # tRNS
        (images.png(mode="RGB", transparency=(255, 0, 0)), "RGB", "RGBA"),
        (images.png(mode="1"), "1", "L"),
        (images.jpeg(mode="L"), "L", "L"),
        (images.cmyk_jpeg(), "CMYK", "RGB"),
        (images.tiff(mode="CMYK"), "CMYK", "RGB"),
        (images.tiff(mode="LAB"), "LAB", "RGB"),
        (images.png(image=images.grey16()), "I;16", "L"),
        (images.tiff(image=images.solid((8, 8), "F", 0.5)), "F", "L"),
        (images.tiff(image=images.solid((8, 8), "I", 1000)), "I", "L"),
        (images.webp(mode="RGBA"), "RGBA", "RGBA"),
        (images.avif(mode="RGBA"), "RGBA", "RGBA"),
        (images.heic(mode="RGBA"), "RGBA", "RGBA"),
    ],
)
def test_every_mode_becomes_rgb_rgba_l_or_la(
    data: bytes, stored_mode: str, pixels_mode: str
) -> None:
    image = run(data)

    assert image.mode == stored_mode  # the file as stored
    assert image.pixels.mode == pixels_mode
    assert image.has_alpha == (pixels_mode in ("RGBA", "LA"))
    assert image.pixels.info == {}  # no metadata rides along towards the thumbnails


def test_transparent_palette_keeps_its_transparency() -> None:
    pixels = run(images.png(image=images.transparent_palette((40, 30)))).pixels

    assert pixels.getpixel((39, 15))[3] == 0  # the transparent right half
    assert pixels.getpixel((2, 2)) == (*images.MARK, 255)


@pytest.mark.parametrize(("value", "grey"), [(0, 0), (32768, 128), (65535, 255)])
def test_16_bit_grey_is_scaled_to_8_bits_not_clipped(value: int, grey: int) -> None:
    pixels = run(images.png(image=images.grey16(value=value))).pixels

    assert pixels.getextrema() == (grey, grey)  # mid-grey stays mid-grey, not white


def test_16_bit_gradient_keeps_its_shades() -> None:
    ramp = Image.linear_gradient("L").resize((64, 64)).point(lambda v: v * 257, "I")
    data = images.png(image=ramp.convert("I;16"))

    pixels = run(data).pixels

    low, high = pixels.getextrema()
    assert low < 8 and high > 247  # the ramp's ends (resizing the ramp softened them a little)
    assert sum(1 for count in pixels.histogram() if count) > 50  # shades, not a few bands


@pytest.mark.parametrize(("value", "grey"), [(0.0, 0), (0.5, 128), (1.0, 255)])
def test_float_tiff_in_0_1_is_scaled_to_8_bits(value: float, grey: int) -> None:
    pixels = run(images.tiff(image=images.solid((8, 8), "F", value))).pixels

    assert pixels.getextrema() == (grey, grey)


def test_float_tiff_outside_0_1_is_stretched_over_its_range() -> None:
    ramp = Image.linear_gradient("L").resize((16, 16)).point(lambda v: v * 40.0 - 5000.0, "F")

    pixels = run(images.tiff(image=ramp)).pixels

    assert pixels.getextrema() == (0, 255)


def test_cmyk_jpeg_comes_out_rgb_with_its_colours() -> None:
    pixels = run(images.cmyk_jpeg()).pixels

    assert pixels.mode == "RGB"
    assert is_red(pixels.getpixel((2, 2)))  # not inverted, not a colour mess


def test_a_profile_that_does_not_fit_falls_back_to_plain_conversion() -> None:
    data = images.cmyk_jpeg(icc_profile=images.srgb_profile())  # an RGB profile on CMYK data

    assert is_red(run(data).pixels.getpixel((2, 2)))


def test_an_srgb_profile_leaves_colours_alone() -> None:
    plain = run(images.png((32, 32))).pixels
    tagged = run(images.png((32, 32), icc_profile=images.srgb_profile())).pixels

    assert max(abs(a - b) for a, b in zip(plain.tobytes(), tagged.tobytes(), strict=True)) <= 2


def test_animated_gif_gives_its_first_frame_and_frame_count() -> None:
    image = run(images.gif(frames=3))

    assert image.format == "GIF"
    assert image.frame_count == 3
    assert image.is_animated
    assert is_red(image.pixels.getpixel((2, 2)))  # frames 2 and 3 are rotated: corner is black


def test_animated_webp_counts_its_frames() -> None:
    frames = [images.picture().rotate(10 * i) for i in range(4)]
    data = images.encode(frames[0], "WEBP", save_all=True, append_images=frames[1:])

    image = run(data)

    assert image.frame_count == 4
    assert is_red(image.pixels.getpixel((2, 2)))


def test_the_extension_never_decides_only_content() -> None:
    # decode() is never told a name; a GIF uploaded as "x.png" is a GIF.
    assert run(images.gif()).format == "GIF"


# --- orientation --------------------------------------------------------------------------


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_matches_pillows_exif_transpose(orientation: int) -> None:
    data = images.png((40, 30), exif_orientation=orientation)  # lossless: exact comparison
    with Image.open(io.BytesIO(data)) as stored:
        expected = ImageOps.exif_transpose(stored).convert("RGB")

    image = run(data)

    assert (image.width, image.height) == (40, 30)  # header values, as stored
    assert image.pixels.size == expected.size
    assert image.pixels.tobytes() == expected.tobytes()
    assert image.exif["orientation"] == orientation


# Where the stored top-left corner shows after orientation (EXIF 2-8), on a 40x30 image.
CORNER_AFTER = {
    1: "top-left",
    2: "top-right",
    3: "bottom-right",
    4: "bottom-left",
    5: "top-left",
    6: "top-right",
    7: "bottom-right",
    8: "bottom-left",
}


@pytest.mark.parametrize("orientation", range(1, 9))
def test_the_marked_corner_ends_up_where_the_orientation_says(orientation: int) -> None:
    pixels = run(images.jpeg((80, 60), exif_orientation=orientation)).pixels
    w, h = pixels.size
    corners = {
        "top-left": (2, 2),
        "top-right": (w - 3, 2),
        "bottom-left": (2, h - 3),
        "bottom-right": (w - 3, h - 3),
    }

    red = [name for name, xy in corners.items() if is_red(pixels.getpixel(xy))]

    assert red == [CORNER_AFTER[orientation]]
    assert (w < h) == (orientation >= 5)  # 5-8 turn the landscape photo to portrait


def test_landscape_stored_orientation_6_photo_is_portrait_after_draft() -> None:
    image = run(images.jpeg((1600, 1200), exif_orientation=6), largest_box=(640, 480))

    assert (image.width, image.height) == (1600, 1200)
    assert image.pixels.width < image.pixels.height
    assert image.pixels.size[0] < 1200  # decoded at a reduced scale...
    assert fit_within(image.pixels.size, (640, 480)) == (360, 480)  # ...that still covers it
    assert is_red(image.pixels.getpixel((image.pixels.width - 3, 2)))


@pytest.mark.parametrize("orientation", [1, 6, 8])
@pytest.mark.parametrize("box", [(200, 800), (800, 200), (100, 100)])
def test_draft_never_goes_below_the_largest_box_after_orientation(
    orientation: int, box: tuple[int, int]
) -> None:
    # A wide stored photo: a 90-degree orientation turns it tall, so the axis that limits
    # the reduction changes. Matching the box against the stored axes would decode too small.
    data = images.jpeg((1600, 400), exif_orientation=orientation)
    with Image.open(io.BytesIO(data)) as stored:
        full = ImageOps.exif_transpose(stored).size

    pixels = run(data, largest_box=box).pixels

    wanted = fit_within(full, box)
    assert pixels.width >= wanted[0] and pixels.height >= wanted[1]
    assert pixels.width * pixels.height < full[0] * full[1] or wanted == full


def test_no_draft_when_the_box_needs_full_size() -> None:
    assert run(images.jpeg((300, 200)), largest_box=(640, 480)).pixels.size == (300, 200)


# --- EXIF essentials ------------------------------------------------------------------------


def test_exif_essentials_with_southern_western_gps_below_sea_level() -> None:
    data = images.jpeg(
        exif_orientation=1,
        gps=(-33.8568, -151.2153),
        altitude=-12.5,
        make="Apple\x00\x00",
        model="  iPhone 15 Pro ",
        date_taken="2024:05:01 12:34:56",
        date_time="2024:06:01 00:00:00",
    )

    exif = run(data).exif

    assert exif == {
        "camera_make": "Apple",
        "camera_model": "iPhone 15 Pro",
        "date_taken": "2024-05-01T12:34:56",  # DateTimeOriginal wins over DateTime
        "orientation": 1,
        "gps_latitude": pytest.approx(-33.8568, abs=1e-6),
        "gps_longitude": pytest.approx(-151.2153, abs=1e-6),
        "gps_altitude": pytest.approx(-12.5),
    }


def test_exif_northern_eastern_gps_above_sea_level() -> None:
    exif = run(images.jpeg(gps=(48.8584, 2.2945), altitude=35.0)).exif

    assert exif["gps_latitude"] == pytest.approx(48.8584, abs=1e-6)
    assert exif["gps_longitude"] == pytest.approx(2.2945, abs=1e-6)
    assert exif["gps_altitude"] == pytest.approx(35.0)


def test_date_falls_back_to_datetime_and_odd_dates_are_kept_as_text() -> None:
    assert run(images.jpeg(date_time="2023:01:02 03:04:05")).exif == {
        "date_taken": "2023-01-02T03:04:05"
    }
    assert run(images.jpeg(date_taken="2023:01:02")).exif == {"date_taken": "2023:01:02"}
    assert run(images.jpeg(date_taken="0000:00:00 00:00:00")).exif == {}


def test_exif_from_png_and_webp() -> None:
    assert run(images.png(gps=(1.5, -2.25))).exif == {"gps_latitude": 1.5, "gps_longitude": -2.25}
    webp = images.encode(images.picture(), "WEBP", exif=images.exif(make="Canon").tobytes())
    assert run(webp).exif == {"camera_make": "Canon"}


def test_no_exif_gives_an_empty_dict() -> None:
    assert run(images.png()).exif == {}


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow warns about the EXIF it skips
@pytest.mark.parametrize(
    "data",
    [
        images.corrupt_exif_jpeg(),  # not a TIFF header
        images.corrupt_exif_jpeg(payload=b"MM\x00\x2a\x00\x00\x00\x08\x00\x05\x01"),  # cut short
        images.corrupt_exif_jpeg(payload=b"II\x2a\x00\xff\xff\xff\x7f"),  # IFD far past the end
        images.with_png_chunk(images.png(), b"eXIf", b"MM\x00\x2a\x00\x00\x00\x08\xff\xff"),
    ],
    ids=["garbage", "truncated", "bad-offset", "png-eXIf"],
)
def test_a_corrupt_exif_block_does_not_fail_the_image(data: bytes) -> None:
    image = run(data)

    assert image.exif == {}
    assert image.pixels.size == (64, 48)
    assert is_red(image.pixels.getpixel((2, 2)))


def test_read_exif_of_an_unreadable_block_is_empty() -> None:
    # What Pillow does with it...
    with Image.open(io.BytesIO(images.corrupt_exif_jpeg())) as im, pytest.raises(SyntaxError):
        im.getexif()
    with Image.open(io.BytesIO(images.corrupt_exif_jpeg())) as im:
        assert read_exif(im) == {}  # ...and what we make of it


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_randomly_damaged_exif_never_fails_the_image() -> None:
    good = images.exif(
        orientation=6, gps=(-33.8, 151.2), altitude=10.0, make="Canon", date_taken="2024:05:01"
    ).tobytes()
    rng = random.Random(1234)
    for _ in range(150):
        damaged = bytearray(good)
        for _ in range(rng.randint(1, 8)):
            damaged[rng.randrange(6, len(damaged))] = rng.randrange(256)
        image = run(images.corrupt_exif_jpeg((16, 12), payload=bytes(damaged[6:])))
        assert image.pixels.size in ((16, 12), (12, 16))
        assert isinstance(image.exif, dict)


def test_only_exif_errors_are_forgiven(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: Image.Image) -> Image.Exif:
        raise RuntimeError("a bug, not bad EXIF")

    monkeypatch.setattr(Image.Image, "getexif", broken)
    with pytest.raises(RuntimeError):
        run(images.jpeg())


# --- refusals ---------------------------------------------------------------------------------


def test_empty_file() -> None:
    error = rejected(b"")

    assert error.error_type == "EmptyFile"
    assert error.message == "The file is 0 bytes long."


def test_file_over_the_byte_limit() -> None:
    data = images.jpeg()

    error = rejected(data, max_file_bytes=len(data) - 1)

    assert error.error_type == "FileTooLarge"
    assert str(len(data)) in error.message
    assert run(data, max_file_bytes=len(data)).format == "JPEG"  # the limit itself is fine


@pytest.mark.parametrize(
    ("data", "error_type"),
    [
        (images.TEXT, "NotAnImage"),
        (images.HTML, "NotAnImage"),
        (images.XML, "NotAnImage"),
        (images.pdf(), "UnsupportedFormat"),
        (images.ico(), "UnsupportedFormat"),
        (images.eps(), "UnsupportedFormat"),
        (images.psd(), "UnsupportedFormat"),
        (images.SVG, "UnsupportedFormat"),
        (images.jpeg()[:20], "CorruptImage"),  # a JPEG signature, then nothing readable
    ],
    ids=["text", "html", "xml", "pdf", "ico", "eps", "psd", "svg", "jpeg-header-only"],
)
def test_what_is_not_an_accepted_image(data: bytes, error_type: str) -> None:
    error = rejected(data)

    assert error.error_type == error_type
    assert error.message.endswith(".")


@pytest.mark.parametrize(
    ("data", "variant"),
    [
        (images.bmp_variant(compression=4), "Unsupported BMP compression (4: JPEG inside BMP)"),
        (images.bmp_variant(compression=5), "Unsupported BMP compression (5: PNG inside BMP)"),
        (
            images.bmp_variant(bits=16, compression=3, masks=(0xF00, 0xF0, 0xF)),  # RGB 4-4-4
            "Unsupported BMP bitfields layout",
        ),
        (images.bmp_variant(bits=64), "Unsupported BMP pixel depth (64)"),
    ],
    ids=["jpeg-in-bmp", "png-in-bmp", "bitfields-444", "64-bit"],
)
def test_a_bmp_variant_pillow_cannot_read_is_unsupported_not_corrupt(
    data: bytes, variant: str
) -> None:
    error = rejected(data)

    assert error.error_type == "UnsupportedFormat"
    assert error.message == f"The file is a BMP in a variant that cannot be read ({variant})."


@pytest.mark.parametrize(
    ("compression", "named"),
    [(34712, "JPEG 2000"), (34887, "LERC"), (40000, "not known to Pillow")],
)
def test_a_tiff_compressed_with_a_scheme_pillow_does_not_know_is_unsupported(
    compression: int, named: str
) -> None:
    error = rejected(images.tiff_compressed_as(compression))

    assert error.error_type == "UnsupportedFormat"
    assert error.message == (
        f"The file is a TIFF in a variant that cannot be read (compression {compression}: {named})."
    )


def test_a_tiff_whose_directory_cannot_be_read_is_still_corrupt() -> None:
    error = rejected(images.tiff_compressed_as(34712)[:12])  # the directory is cut off

    assert error.error_type == "CorruptImage"
    assert error.message == "The file has a TIFF signature but its header is damaged."


def test_a_bmp_header_no_writer_makes_is_still_corrupt() -> None:
    data = bytearray(images.bmp_variant())
    data[14:18] = (41).to_bytes(4, "little")  # an info header size that does not exist

    assert rejected(bytes(data)).error_type == "CorruptImage"


def test_the_hand_written_bmp_header_is_itself_readable() -> None:
    assert run(images.bmp_variant(size=(4, 2))).format == "BMP"  # the variants' baseline


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (images.pdf(), "PDF"),
        (images.ico(), "ICO"),
        (images.eps(), "PostScript (EPS)"),
        (images.psd(), "PSD"),
        (images.SVG, "SVG"),
        (images.encode(images.picture(), "JPEG2000"), "JPEG 2000"),
        (images.encode(images.picture(), "PPM"), "Netpbm"),
    ],
    ids=["pdf", "ico", "eps", "psd", "svg", "jpeg2000", "ppm"],
)
def test_unsupported_format_is_named_from_its_signature(data: bytes, name: str) -> None:
    assert rejected(data).message.startswith(f"The file is in {name} format, which is not")


@pytest.fixture
def consulted(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """(format, "signature" or "parse") for every call `decode` makes to a Pillow plugin."""
    Image.init()  # every plugin registered now, so that none registers itself over the patch
    calls: list[tuple[str, str]] = []

    def recorded(fmt: str, what: str, function: Any) -> Any:
        def call(*args: Any) -> Any:
            calls.append((fmt, what))
            return function(*args)

        return call

    for fmt, (factory, accept) in list(Image.OPEN.items()):
        entry = (recorded(fmt, "parse", factory), accept and recorded(fmt, "signature", accept))
        monkeypatch.setitem(Image.OPEN, fmt, entry)
    return calls


@pytest.mark.parametrize(
    "data",
    [images.TEXT, images.HTML, images.pdf(), images.ico(), images.eps(), images.psd(), images.SVG],
    ids=["text", "html", "pdf", "ico", "eps", "psd", "svg"],
)
def test_a_refused_file_is_never_given_to_a_parser(
    data: bytes, consulted: list[tuple[str, str]]
) -> None:
    assert rejected(data).error_type in ("NotAnImage", "UnsupportedFormat")

    assert consulted  # the accepted formats' signature checks, and nothing else
    assert {fmt for fmt, _ in consulted} <= set(ACCEPTED_FORMATS)
    assert {what for _, what in consulted} == {"signature"}


def test_a_damaged_header_is_parsed_by_its_own_format_only(
    consulted: list[tuple[str, str]],
) -> None:
    error = rejected(images.jpeg()[:20])

    assert error.message == "The file has a JPEG signature but its header is damaged."
    assert {fmt for fmt, _ in consulted} <= set(ACCEPTED_FORMATS)
    assert [fmt for fmt, what in consulted if what == "parse"] == ["JPEG"]


@pytest.mark.parametrize(
    ("make", "fmt"),
    [
        (images.jpeg, "JPEG"),
        (images.mpo, "JPEG"),  # JPEG's opener makes the MPO
        (images.png, "PNG"),
        (images.webp, "WEBP"),
        (images.gif, "GIF"),
        (images.tiff, "TIFF"),
        (images.bmp, "BMP"),
        (images.avif, "AVIF"),
        (images.heic, "HEIF"),
    ],
)
def test_an_image_is_parsed_by_its_own_format_only(
    make: Any, fmt: str, consulted: list[tuple[str, str]]
) -> None:
    data = make((64, 48))

    assert run(data).width == 64
    assert {fmt for fmt, _ in consulted} <= set(ACCEPTED_FORMATS)
    assert [fmt for fmt, what in consulted if what == "parse"] == [fmt]


@pytest.mark.parametrize(
    "make",
    [
        images.jpeg,
        images.png,
        images.gif,
        images.webp,
        images.tiff,
        images.heic,
        images.avif,
        images.bmp,
    ],
)
def test_truncated_files_are_corrupt(make: Any) -> None:
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    error = rejected(images.truncate(make((200, 150)), 0.6))

    assert error.error_type == "CorruptImage"


def test_avif_whose_data_is_garbage_is_corrupt() -> None:
    # libavif reports this as a RuntimeError, which must not escape as a crash.
    error = rejected(images.zero_tail(images.avif((64, 48)), 0.5))

    assert error.error_type == "CorruptImage"
    assert "Failed to decode" in error.message


def test_a_broken_later_tiff_page_does_not_spoil_the_first() -> None:
    image = run(images.tiff_with_broken_second_frame())

    assert image.frame_count == 1  # the pages that can be counted for sure
    assert is_red(image.pixels.getpixel((2, 2)))


@pytest.fixture
def no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if any image data gets decoded."""

    def load(self: ImageFile.ImageFile) -> None:
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)


@pytest.mark.usefixtures("no_decoding")
def test_an_image_over_the_limit_is_refused_from_its_header() -> None:
    data = images.png_bomb(12000, 12000)  # 144 MP: over the limit of 100 MP, under twice it
    assert len(data) < 1000

    with pytest.warns(Image.DecompressionBombWarning):  # Pillow's own check warns first
        error = rejected(data)

    assert error.error_type == "TooManyPixels"
    assert error.message == (
        "The image is 12000x12000 pixels (144.0 megapixels), over the limit of 100.0 megapixels."
    )


@pytest.mark.usefixtures("no_decoding")
@pytest.mark.parametrize(
    "data",
    [images.png_bomb(30000, 30000), images.gif_huge_frame((60000, 60000))],
    ids=["png", "gif-huge-frame"],
)
def test_pillow_refuses_an_image_over_twice_the_limit(data: bytes) -> None:
    error = rejected(data)

    assert error.error_type == "TooManyPixels"
    assert error.message == "The image has more than twice the limit of 100.0 megapixels."


@pytest.mark.usefixtures("no_decoding")
def test_pillows_check_is_a_backstop_behind_ours(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(decode_module, "_check_pixels", lambda size, max_pixels: None)

    error = rejected(images.png_bomb(30000, 30000), max_pixels=10_000_000)

    assert error.message == "The image has more than twice the limit of 10.0 megapixels."


@pytest.mark.usefixtures("no_decoding")
def test_pillows_bomb_warning_never_escapes() -> None:
    # 96 MP: over our limit of 50 MP, where Pillow's check (at the same limit) warns.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        error = rejected(images.png_bomb(12000, 8000), max_pixels=50_000_000)

    assert error.error_type == "TooManyPixels"


def test_the_pixel_limit_is_inclusive() -> None:
    assert run(images.png((64, 48)), max_pixels=64 * 48).width == 64
    with pytest.warns(Image.DecompressionBombWarning):
        error = rejected(images.png((64, 48)), max_pixels=64 * 48 - 1)
    assert error.error_type == "TooManyPixels"


def test_other_failures_are_not_disguised(monkeypatch: pytest.MonkeyPatch) -> None:
    def out_of_memory(self: ImageFile.ImageFile) -> None:
        raise MemoryError

    monkeypatch.setattr(ImageFile.ImageFile, "load", out_of_memory)
    with pytest.raises(MemoryError):
        run(images.png())


# --- the task ---------------------------------------------------------------------------------
