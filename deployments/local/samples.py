"""Sample uploads for `make up`: ordinary photos and the awkward cases, made on the spot."""

from __future__ import annotations

import io
from pathlib import Path

import pillow_heif
from PIL import Image, ImageDraw

# Real photos (scikit-image's samples, CC0 and public domain: photos/README.md), so that
# local labels (IMAGE_PIPELINE_LABELS=local, what `make up` uses) have something to see.
PHOTOS = Path(__file__).with_name("photos")
PHOTO_SAMPLES = {"cat.jpg": "chelsea", "coffee.jpg": "coffee", "rocket.jpg": "rocket"}


def _scene(size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    """A picture with a recognisable top-left corner, so orientation mistakes show."""
    image = Image.linear_gradient("L").resize(size).convert("RGB")
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, size[0] // 4, size[1] // 4), fill=(220, 30, 30))
    draw.ellipse(
        (size[0] // 3, size[1] // 3, size[0] * 2 // 3, size[1] * 2 // 3), fill=(30, 90, 200)
    )
    return image.convert(mode)


def _save(image: Image.Image, format: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def _rotated_phone_photo() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown portrait: the original's "sideways" bug
    exif[0x010F], exif[0x0110] = "Example", "Phone 1"
    return _save(_scene((1600, 1200)), "JPEG", exif=exif, quality=90)


def _animation() -> bytes:
    frames = [_scene((320, 240)).rotate(angle) for angle in (0, 90, 180)]
    return _save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=200)


def _transparent_logo() -> bytes:
    logo = Image.new("RGBA", (800, 800), (0, 0, 0, 0))
    ImageDraw.Draw(logo).ellipse((100, 100, 700, 700), fill=(250, 180, 0, 255))
    return _save(logo, "PNG")


def _heic() -> bytes:
    buffer = io.BytesIO()
    pillow_heif.from_pillow(_scene((1024, 768))).save(buffer, quality=80)
    return buffer.getvalue()


def samples() -> dict[str, bytes]:
    """File name → content; the last two are meant to fail."""
    photo = _save(_scene((2048, 1536)), "JPEG", quality=90)
    return {
        "photo.jpg": photo,
        "phone photo+rotated.jpg": _rotated_phone_photo(),
        "logo.png": _transparent_logo(),
        "animation.gif": _animation(),
        "scan-cmyk.jpg": _save(_scene((1200, 900), "CMYK"), "JPEG"),
        "picture.webp": _save(_scene((1280, 720)), "WEBP"),
        "phone.heic": _heic(),
        **{name: (PHOTOS / f"{photo}.jpg").read_bytes() for name, photo in PHOTO_SAMPLES.items()},
        "not-an-image.jpg": b"This is a text file with a .jpg name.\n",
        "truncated.jpg": photo[: len(photo) // 2],
    }
