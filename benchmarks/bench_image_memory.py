"""Benchmark: peak memory of one image's work, for the costliest images at the pixel limit.

    python -m benchmarks.bench_image_memory [--pixels N] [--case SLUG ...] [--output BENCHMARKS.md]

The pixel limit (`IMAGE_PIPELINE_MAX_PIXELS`) bounds the memory a run needs only if we know
what an image at the limit costs. Each case is an image of `--pixels` pixels (default: the
configured limit; the most nearly square size) in a format and mode that cannot be decoded
at a reduced scale: 16-bit RGBA and 16-bit grey PNG, RGBA WebP, RGBA/CMYK/float TIFF, RGBA
HEIC and AVIF; plus JPEGs, which `decode` has libjpeg decode at a reduced scale (down to
1/8), though a progressive JPEG still keeps every DCT coefficient of the full image. The
files compress to almost nothing, as an attacker's would: memory follows the pixels, not
the bytes.

For each case a fresh process reads the file, warms up on a small image of the same kind
(plugins, codecs), resets its peak-RSS mark (`/proc/self/clear_refs`) and runs the work of
the validate, thumbnails and metadata steps (`decode`, `render_thumbnails`, `describe`);
the figure is its peak RSS (VmHWM) above the RSS just before. tracemalloc cannot see
Pillow's pixel memory.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import struct
import sys
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from PIL import Image, features

from benchmarks import common
from image_pipeline.imaging.decode import decode
from image_pipeline.imaging.render import render_thumbnails
from image_pipeline.metadata import describe
from image_pipeline.models import SourceObject
from image_pipeline.settings import MEMORY_BUDGET_BYTES, Settings, get_settings

SECTION = "image-memory"
MODULE = "benchmarks.bench_image_memory"
Size = tuple[int, int]
WARMUP_SIZE = (320, 240)


# --- the images ----------------------------------------------------------------------------


def _png(size: Size, bit_depth: int, colour_type: int, row: bytes) -> bytes:
    """A PNG written by hand (Pillow cannot write 16-bit RGBA): `row`, then rows that repeat
    it (filter "Up", all zeros), so that the file stays small whatever its size."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    width, height = size
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    compressor = zlib.compressobj(9)
    same = b"\x02" + bytes(len(row))
    data = compressor.compress(b"\x00" + row)
    data += b"".join(compressor.compress(same) for _ in range(height - 1)) + compressor.flush()
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    )


def _ramp(width: int, channels: int, alpha: str) -> bytes:
    """One 16-bit row: a colour ramp; `alpha` "opaque", "ramp" or "" (no alpha channel)."""
    values = []
    for x in range(width):
        level = x * 65535 // max(1, width - 1)
        values += [level, 65535 - level, 32768][: channels - (1 if alpha else 0)]
        if alpha:
            values.append(65535 if alpha == "opaque" else 65535 - level)
    return struct.pack(f">{len(values)}H", *values)


def png16_rgba(size: Size, alpha: str) -> bytes:
    return _png(size, 16, 6, _ramp(size[0], 4, alpha))


def png16_grey(size: Size) -> bytes:
    return _png(size, 16, 0, _ramp(size[0], 1, ""))


def png8_rgb(size: Size) -> bytes:
    return _png(size, 8, 2, bytes(x % 256 for x in range(size[0] * 3)))


def gradient(size: Size, mode: str) -> Image.Image:
    """A smooth picture in `mode`, partly transparent where the mode has alpha."""
    red = Image.linear_gradient("L").resize(size)
    rgb = Image.merge("RGB", (red, red.transpose(Image.Transpose.ROTATE_180), red))
    if mode in ("RGBA", "LA"):
        rgb.putalpha(red)
    return rgb.convert(mode) if rgb.mode != mode else rgb


def saved(size: Size, mode: str, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    gradient(size, mode).save(buffer, fmt, **options)
    return buffer.getvalue()


@dataclass(frozen=True)
class Case:
    slug: str
    title: str
    make: Callable[[Size], bytes]
    reduced: bool = False  # decoded at a reduced scale (JPEG)


CASES = (
    Case("png16-rgba", "PNG, 16-bit RGBA, partly transparent", lambda s: png16_rgba(s, "ramp")),
    Case("png16-rgba-opaque", "PNG, 16-bit RGBA, opaque", lambda s: png16_rgba(s, "opaque")),
    Case("png16-grey", "PNG, 16-bit grey", png16_grey),
    Case("png8-rgb", "PNG, 8-bit RGB", png8_rgb),
    Case("webp-rgba", "WebP, lossless RGBA", lambda s: saved(s, "RGBA", "WEBP", lossless=True)),
    Case(
        "tiff-rgba",
        "TIFF, RGBA (deflate)",
        lambda s: saved(s, "RGBA", "TIFF", compression="tiff_adobe_deflate"),
    ),
    Case(
        "tiff-cmyk",
        "TIFF, CMYK (deflate)",
        lambda s: saved(s, "CMYK", "TIFF", compression="tiff_adobe_deflate"),
    ),
    Case(
        "tiff-float",
        "TIFF, 32-bit float grey (deflate)",
        lambda s: saved(s, "F", "TIFF", compression="tiff_adobe_deflate"),
    ),
    Case("heic-rgba", "HEIC, RGBA", lambda s: saved(s, "RGBA", "HEIF", quality=50)),
    Case("jpeg-cmyk", "JPEG, CMYK", lambda s: saved(s, "CMYK", "JPEG", quality=50), True),
    Case(
        "jpeg-progressive",
        "JPEG, progressive RGB 4:4:4",
        lambda s: saved(s, "RGB", "JPEG", quality=50, progressive=True, subsampling=0),
        True,
    ),
    Case("jpeg-baseline", "JPEG, baseline RGB 4:2:0", lambda s: saved(s, "RGB", "JPEG"), True),
)
if features.check("avif"):
    CASES += (
        Case("avif-rgba", "AVIF, RGBA", lambda s: saved(s, "RGBA", "AVIF", quality=50, speed=10)),
    )
CASES_BY_SLUG = {case.slug: case for case in CASES}


def size_for(pixels: int) -> Size:
    """The most nearly square size of at most `pixels` pixels."""
    side = math.isqrt(pixels)
    return side, pixels // side


# --- one case in a fresh process -----------------------------------------------------------


def image_work(data: bytes, settings: Settings) -> tuple[int, int]:
    """What the validate, thumbnails and metadata steps do with a downloaded image."""
    boxes = settings.thumbnail_sizes
    largest_box = (max(w for w, _ in boxes), max(h for _, h in boxes))
    image = decode(
        data,
        max_file_bytes=settings.max_file_bytes,
        max_pixels=settings.max_pixels,
        largest_box=largest_box,
    )
    render_thumbnails(
        image,
        boxes,
        transparent_format=settings.transparent_format,
        jpeg_quality=settings.jpeg_quality,
    )
    source = SourceObject(
        bucket="bench",
        key="uploads/bench/x",
        etag="0" * 32,
        size=len(data),
        last_modified=datetime.now(UTC),
    )
    describe(source, image)
    return image.pixels.size


def child(slug: str, path: str, pixels: int) -> None:
    """Measure one case in this fresh process; print its peak RSS as JSON."""
    case = CASES_BY_SLUG[slug]
    settings = get_settings().model_copy(update={"max_pixels": pixels})
    image_work(case.make(WARMUP_SIZE), settings)  # load plugins, codecs, caches
    data = Path(path).read_bytes()
    reset = common.reset_peak_rss()
    before = common.current_rss() if reset else common.peak_rss()
    decoded = image_work(data, settings)
    peak = max(0, common.peak_rss() - before)
    print(json.dumps({"peak_bytes": peak, "reset": reset, "decoded": decoded}))


@dataclass(frozen=True)
class Result:
    case: Case
    file_bytes: int
    peak_bytes: int
    decoded: Size


def measure(pixels: int, slugs: list[str]) -> list[Result]:
    size = size_for(pixels)
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-image-memory-") as tmp:
        for slug in slugs:
            case = CASES_BY_SLUG[slug]
            print(f"{slug}: making {size[0]}x{size[1]}", file=sys.stderr, flush=True)
            path = Path(tmp) / slug
            path.write_bytes(case.make(size))
            answer = common.run_child(["-m", MODULE, "--child", slug, str(path), str(pixels)])
            if not answer["reset"]:
                print("peak RSS could not be reset: figures are lower bounds", file=sys.stderr)
            result = Result(
                case, path.stat().st_size, answer["peak_bytes"], tuple(answer["decoded"])
            )
            print(f"{slug}: {common.mib(result.peak_bytes)}", file=sys.stderr, flush=True)
            results.append(result)
            path.unlink()
    return results


# --- the report ----------------------------------------------------------------------------


def report(results: list[Result], pixels: int, settings: Settings, command: str) -> str:
    size = size_for(pixels)
    count = size[0] * size[1]
    rows = [
        [
            result.case.title,
            f"{result.file_bytes / 1e6:.2f} MB",
            f"{result.decoded[0]}x{result.decoded[1]}",
            common.mib(result.peak_bytes),
            f"{result.peak_bytes / count:.1f}",
        ]
        for result in results
    ]
    full = [r for r in results if not r.case.reduced]
    worst = max(full or results, key=lambda r: r.peak_bytes)
    per_image = worst.peak_bytes + settings.max_file_bytes
    in_flight = settings.worker_limit * settings.images_at_once
    fits = "within" if per_image * in_flight <= MEMORY_BUDGET_BYTES else "**over**"
    verdict = (
        f"Costliest: {worst.case.title}, {common.mib(worst.peak_bytes)} "
        f"({worst.peak_bytes / count:.1f} bytes a pixel). With its download (up to "
        f"`IMAGE_PIPELINE_MAX_FILE_BYTES`, {common.mib(settings.max_file_bytes)}) an image "
        f"needs {common.mib(per_image)}; {in_flight} in flight ({settings.worker_limit} runs "
        f"at once x {settings.images_at_once} images each) "
        f"{common.mib(per_image * in_flight)}: {fits} the budget of "
        f"{common.mib(MEMORY_BUDGET_BYTES)} (`MEMORY_BUDGET_BYTES`, image_pipeline/settings.py)."
    )
    return "\n".join(
        [
            "## Image memory: the costliest images at the pixel limit",
            "",
            f"`{command}`. One image of {size[0]}x{size[1]} pixels ({count / 1e6:.1f} MP; "
            f"the configured limit is {settings.max_pixels / 1e6:.1f} MP) per case, its work "
            "as the validate, thumbnails and metadata steps do it (`decode`, "
            "`render_thumbnails`, `describe`) in a fresh process: peak RSS (VmHWM, reset "
            "through `/proc/self/clear_refs`) above the RSS just before, with the file's "
            "bytes already in memory. Bytes per pixel: that peak over the image's pixels. "
            "JPEGs are decoded at a reduced scale (the decoded size shows it); the other "
            "formats cannot be.",
            "",
            *common.machine_lines(
                {
                    "Pillow": Image.__version__,
                    "pillow-heif": common.versions("pillow-heif")["pillow-heif"],
                }
            ),
            "",
            common.markdown_table(
                ["image", "file", "decoded at", "peak memory", "bytes per pixel"],
                rows,
                "lrrrr",
            ),
            "",
            verdict,
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pixels", type=int, help="pixels per image (default: the limit)")
    parser.add_argument("--case", action="append", choices=sorted(CASES_BY_SLUG))
    parser.add_argument(
        "--output", type=Path, help="Markdown file whose image-memory section is written"
    )
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)  # CASE PATH PIXELS
    args = parser.parse_args(argv)
    if args.child:
        slug, path, pixels = args.child
        child(slug, path, int(pixels))
        return 0
    settings = get_settings()
    pixels = args.pixels or settings.max_pixels
    results = measure(pixels, args.case or list(CASES_BY_SLUG))
    command = f"python -m {MODULE}" + (f" --pixels {args.pixels}" if args.pixels else "")
    section = report(results, pixels, settings, command)
    print(section)
    if args.output:
        common.write_section(args.output, SECTION, section)
        print(f"\nwritten to {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
