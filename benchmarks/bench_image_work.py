"""Benchmark 1, image work: validate + thumbnails + metadata of one image, three ways.

    python -m benchmarks.bench_image_work [--runs 7] [--warmup 1] [--output BENCHMARKS.md]

- ours: what the pipeline does with the bytes it downloaded once: `decode` (a JPEG decoded at
  the reduced DCT scale that still covers the largest configured box, EXIF orientation
  applied), `render_thumbnails` for every configured box, `describe`.
- original: the original Lambdas' method, re-implemented faithfully: the extension alone
  decides the format; for each size the bytes are opened, fully decoded, `thumbnail()`ed and
  saved in the extension's format with Pillow's defaults; then a second copy of the bytes
  (the second download) is opened for the metadata, which reads header properties only.
  No EXIF orientation, no colour management.
- floor: what no method can beat: Pillow's `draft` with the same target as ours, then
  `load()`. No orientation, no resize, no encode. A PNG has no reduced decode: its floor is
  the full decode.

The images are generated (textured, with shapes and grain, so they compress and decode like
photos, unlike flat colours), saved as camera JPEGs (quality 90, EXIF block) and one RGB PNG.
A round runs the three methods once on one image, in an order that rotates from round to
round, so that load from other work on the machine hits all three alike; rounds that other
processes disturbed are measured again (see `common.quiet_rounds`), and ratios are taken
round by round. Peak memory is the peak RSS (VmHWM) above the RSS just before the call, one
fresh child process per method and image: Pillow's pixel memory is invisible to tracemalloc.

    python -m benchmarks.bench_image_work --profile jpeg-12mp   # where ours spends time
    python -m benchmarks.bench_image_work --media --runs 15      # placeholder, hash, crops

`--media` measures, on the 2 MP JPEG, today's image work (above: two fit JPEGs) against the
same work with what issue 15 adds: a cover crop (the entropy crop, the costlier one) for the
100x100 box, the placeholder (ThumbHash and dominant colour of the smallest thumbnail) and
the fingerprint (dHash and pixel digest), round by round; and each thumbnail format's encode
cost (JPEG, WebP, AVIF) at both boxes.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import pstats
import random
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from PIL import Image, ImageCms, ImageDraw, features

from benchmarks import common
from image_pipeline.imaging.decode import decode
from image_pipeline.imaging.fingerprint import dhash, pixel_digest
from image_pipeline.imaging.placeholder import placeholder
from image_pipeline.imaging.render import fit_within, render_thumbnails
from image_pipeline.metadata import describe
from image_pipeline.models import DecodedImage, SourceObject, ThumbnailSpec
from image_pipeline.settings import Settings, get_settings

SECTION = "image-work"
MODULE = "benchmarks.bench_image_work"
Size = tuple[int, int]

# The targets, checked on the 12 MP JPEG.
TARGET_SPEEDUP = 5.0  # original / ours, at least
TARGET_FLOOR = 1.3  # ours / floor, at most
# The figure the backfill benchmark compares against: both cores busy with 2 MP JPEGs.
COMPUTE_LIMIT_CORES = 2

METHODS = ("original", "ours", "floor")


@dataclass(frozen=True)
class Case:
    slug: str
    title: str
    size: Size
    extension: str  # what the original looked at
    orientation: int = 1
    icc: bool = False  # an embedded ICC profile, as phones write (Display P3 there)
    target: bool = False  # the targets are checked on this one

    @property
    def format(self) -> str:
        return "PNG" if self.extension == "png" else "JPEG"

    @property
    def key(self) -> str:
        return f"uploads/bench/{self.slug}.{self.extension}"


CASES = (
    Case("jpeg-2mp", "2 MP JPEG", (1632, 1224), "jpg"),
    Case("jpeg-12mp", "12 MP JPEG", (4000, 3000), "jpg", target=True),
    Case(
        "jpeg-12mp-phone",
        "12 MP JPEG, phone-style (EXIF orientation 6, ICC profile)",
        (4000, 3000),
        "jpg",
        orientation=6,
        icc=True,
    ),
    Case("jpeg-24mp", "24 MP JPEG", (6000, 4000), "jpg"),
    Case("png-12mp", "12 MP PNG (RGB)", (4000, 3000), "png"),
)
CASES_BY_SLUG = {case.slug: case for case in CASES}


# --- the images ----------------------------------------------------------------------------


def photo(size: Size, seed: int) -> Image.Image:
    """A photo-like RGB picture: smooth colour fields, texture at several scales, shapes, grain.

    Deterministic for a seed. At JPEG quality 90 it takes about 0.3 bytes per pixel (a 12 MP
    file of about 3.6 MB), like a phone photo; flat colours would take a tenth of that and
    decode unrealistically fast.
    """
    rng = random.Random(seed)
    width, height = size

    def noise(noise_size: Size) -> Image.Image:
        return Image.frombytes("RGB", noise_size, rng.randbytes(noise_size[0] * noise_size[1] * 3))

    im = noise((4, 3)).resize(size, Image.Resampling.BICUBIC)  # smooth gradients
    for divisor, weight in ((400, 0.5), (100, 0.35), (25, 0.25), (6, 0.15)):
        octave = noise((max(2, width // divisor), max(2, height // divisor)))
        im = Image.blend(im, octave.resize(size, Image.Resampling.BICUBIC), weight)
    shapes = im.copy()
    draw = ImageDraw.Draw(shapes)
    for _ in range(120):
        x0, y0 = rng.randrange(width), rng.randrange(height)
        x1, y1 = x0 + rng.randrange(width // 5), y0 + rng.randrange(height // 5)
        colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        kind = rng.choice(("ellipse", "rectangle", "line"))
        if kind == "ellipse":
            draw.ellipse([x0, y0, x1, y1], fill=colour)
        elif kind == "rectangle":
            draw.rectangle([x0, y0, x1, y1], fill=colour)
        else:
            draw.line([x0, y0, x1, y1], fill=colour, width=max(1, width // 400))
    im = Image.blend(im, shapes, 0.6)  # shapes keep the texture underneath
    return Image.blend(im, noise(size), 0.10)  # sensor grain


def camera_exif(orientation: int, seed: int) -> Image.Exif:
    """An EXIF block like a camera's: make, model, dates, exposure, GPS, an opaque MakerNote."""
    exif = Image.Exif()
    exif[0x010F] = "Canon"  # Make
    exif[0x0110] = "Canon EOS R6"  # Model
    exif[0x0112] = orientation
    exif[0x0131] = "Firmware Version 1.8.1"  # Software
    exif[0x0132] = "2024:05:17 14:03:22"  # DateTime
    exif[0x8769] = {  # Exif IFD
        0x829A: 1 / 250,  # ExposureTime
        0x829D: 5.6,  # FNumber
        0x8827: 200,  # ISOSpeedRatings
        0x9003: "2024:05:17 14:03:22",  # DateTimeOriginal
        0x920A: 35.0,  # FocalLength
        0x927C: random.Random(seed).randbytes(8 * 1024),  # MakerNote: a vendor blob
    }
    exif[0x8825] = {  # GPS IFD
        1: "N",
        2: (48.0, 51.0, 29.5),
        3: "E",
        4: (2.0, 17.0, 40.2),
    }
    return exif


def make_file(case: Case, size: Size | None = None) -> bytes:
    """The encoded upload of `case` (at `size` if given: a small one warms the code paths)."""
    size = size or case.size
    im = photo(size, seed=size[0] * size[1])
    buffer = io.BytesIO()
    if case.format == "PNG":
        im.save(buffer, "PNG")  # Pillow's defaults: compress_level 6
    else:
        options: dict[str, Any] = {"exif": camera_exif(case.orientation, seed=7).tobytes()}
        if case.icc:
            options["icc_profile"] = ImageCms.ImageCmsProfile(
                ImageCms.createProfile("sRGB")
            ).tobytes()
        im.save(buffer, "JPEG", quality=90, **options)
    return buffer.getvalue()


# --- the three methods ---------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """One image and the configuration, prepared outside the timed region."""

    case: Case
    data: bytes
    settings: Settings
    source: SourceObject
    draft_request: Size | None  # what ours asks `draft` for (stored axes); None: no draft

    @property
    def boxes(self) -> list[Size]:
        return list(self.settings.thumbnail_sizes)

    @property
    def largest_box(self) -> Size:
        # As the validate task computes it: one box covering every configured box.
        return (max(w for w, _ in self.boxes), max(h for _, h in self.boxes))


def prepare(case: Case, data: bytes, settings: Settings) -> Job:
    source = SourceObject(
        bucket=settings.uploads_bucket,
        key=case.key,
        etag="0" * 32,
        size=len(data),
        last_modified=datetime(2024, 5, 17, tzinfo=UTC),
    )
    job = Job(case, data, settings, source, None)
    return Job(case, data, settings, source, _draft_request(job))


def _draft_request(job: Job) -> Size | None:
    """The size ours passes to `draft`, worked out the way `tasks.validate._draft` does."""
    with Image.open(io.BytesIO(job.data)) as im:
        if im.format not in ("JPEG", "MPO"):
            return None
        swap = im.getexif().get(0x0112, 1) in (5, 6, 7, 8)
        shown = (im.height, im.width) if swap else im.size
        needed = fit_within(shown, job.largest_box)
        if needed == shown:
            return None
        return (needed[1], needed[0]) if swap else needed


def decode_job(job: Job) -> DecodedImage:
    """The pipeline's decode of the job's bytes, with its settings."""
    return decode(
        job.data,
        max_file_bytes=job.settings.max_file_bytes,
        max_pixels=job.settings.max_pixels,
        largest_box=job.largest_box,
    )


def ours(job: Job) -> list[Size]:
    """The pipeline's image work for one image, after its single download."""
    settings = job.settings
    image = decode_job(job)
    thumbs = render_thumbnails(
        image,
        job.boxes,
        transparent_format=settings.transparent_format,
        jpeg_quality=settings.jpeg_quality,
    )
    describe(job.source, image)
    return [(thumb.width, thumb.height) for thumb in thumbs]


ORIGINAL_FORMATS = {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG"}  # validation: extension only


def original(job: Job) -> list[Size]:
    """The original Lambdas' method: a full decode per size, then a second download."""
    save_format = ORIGINAL_FORMATS[job.case.extension]
    made = []
    for box in job.boxes:
        with Image.open(io.BytesIO(job.data)) as im:
            im.load()  # full decode, once per size
            im.thumbnail(box)  # fit inside, keep aspect, never upscale (draft is too late now)
            buffer = io.BytesIO()
            im.save(buffer, save_format)  # Pillow's defaults (JPEG quality 75)
            made.append(im.size)
    second = memoryview(job.data).tobytes()  # the second download: a fresh copy of the bytes
    with Image.open(io.BytesIO(second)) as im:  # header properties only, no decode
        metadata = {
            "filename": job.source.filename,
            "filesize_bytes": len(second),
            "format": im.format,
            "width_pixels": im.width,
            "height_pixels": im.height,
            "mode": im.mode,
        }
    return [*made, (metadata["width_pixels"], metadata["height_pixels"])]


def floor(job: Job) -> list[Size]:
    """The decode floor: the same reduced-scale decode as ours, and nothing else."""
    with Image.open(io.BytesIO(job.data)) as im:
        if job.draft_request is not None:
            im.draft("RGB", job.draft_request)
        im.load()
        return [im.size]


RUNNERS: dict[str, Callable[[Job], list[Size]]] = {
    "original": original,
    "ours": ours,
    "floor": floor,
}


def check_same_decode(job: Job) -> None:
    """Ours and the floor must decode at the same scale, or the comparison means nothing."""
    image = decode_job(job)
    ours_size = image.pixels.size
    if job.case.orientation in (5, 6, 7, 8):
        ours_size = (ours_size[1], ours_size[0])
    (floor_size,) = floor(job)
    if ours_size != floor_size:
        raise AssertionError(f"{job.case.slug}: ours decodes {ours_size}, the floor {floor_size}")


# --- timing ----------------------------------------------------------------------------------


Sample = tuple[float, float]  # (wall seconds, CPU seconds of this process)
RoundTimes = dict[str, Sample]  # one image, every method once: [method]
Timings = dict[str, common.Rounds[RoundTimes]]  # [case slug]


def time_once(run: Callable[[Job], object], job: Job) -> Sample:
    gc.collect()
    cpu, start = time.process_time(), time.perf_counter()
    run(job)
    return time.perf_counter() - start, time.process_time() - cpu


def one_round(job: Job, number: int) -> RoundTimes:
    """Every method once on one image, in an order that rotates from round to round.

    A round covers one image only, so that it is short enough (0.1-1.2 s) to fall between
    the bursts of other work on the machine.
    """
    shift = number % len(METHODS)
    order = METHODS[shift:] + METHODS[:shift]  # so no method always runs first
    return {method: time_once(RUNNERS[method], job) for method in order}


def measure_times(
    jobs: list[Job], *, runs: int, warmup: int, max_other: float, max_rounds: int
) -> Timings:
    timings: Timings = {}
    for job in jobs:
        print(f"timing {job.case.slug}", file=sys.stderr, flush=True)
        timings[job.case.slug] = common.quiet_rounds(
            lambda number, job=job: one_round(job, number),
            runs=runs,
            warmup=warmup,
            max_other=max_other,
            max_rounds=max_rounds,
        )
    return timings


def samples(timings: Timings, slug: str, method: str, cpu: bool = False) -> list[float]:
    return [times[method][1 if cpu else 0] for times in timings[slug].results]


# --- peak memory (one child process per method and image) ---------------------------------


def measure_memory(paths: dict[str, Path]) -> dict[str, dict[str, int]]:
    """Peak RSS above the RSS before the call, in bytes: memory[case slug][method]."""
    memory: dict[str, dict[str, int]] = {}
    for slug, path in paths.items():
        memory[slug] = {}
        for method in METHODS:
            answer = common.run_child(["-m", MODULE, "--child", method, slug, str(path)])
            if not answer["reset"]:
                print(
                    "peak RSS could not be reset: memory figures are lower bounds", file=sys.stderr
                )
            memory[slug][method] = answer["peak_bytes"]
    return memory


def child(method: str, slug: str, path: str) -> None:
    """Run one method once on one file in this fresh process and print its peak RSS as JSON."""
    case = CASES_BY_SLUG[slug]
    settings = get_settings()
    run = RUNNERS[method]
    run(prepare(case, make_file(case, (320, 240)), settings))  # load plugins, codecs, caches
    job = prepare(case, Path(path).read_bytes(), settings)
    gc.collect()
    reset = common.reset_peak_rss()
    before = common.current_rss() if reset else common.peak_rss()
    run(job)
    print(json.dumps({"peak_bytes": max(0, common.peak_rss() - before), "reset": reset}))


# --- profile -------------------------------------------------------------------------------


# Pillow's C methods, by what they do; everything else (Python code, EXIF parsing) is "other".
PHASES = {
    "decode": ("method 'decode' of 'ImagingDecoder' objects",),
    "resize": ("method 'resize' of", "method 'reduce' of"),
    "encode": ("method 'encode' of 'ImagingEncoder' objects",),
    "orientation, colour, copies": (
        "method 'transpose' of",
        "method 'convert' of",
        "method 'copy' of",
        "apply",  # ImageCms transforms
        "buildTransform",
        "built-in method PIL._imaging.new",
    ),
}


def profile(job: Job, calls: int = 20) -> str:
    """cProfile of ours on one image: time per phase, then the top functions by own time."""
    ours(job)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        ours(job)
    profiler.disable()
    stats = pstats.Stats(profiler)
    phases = dict.fromkeys([*PHASES, "other"], 0.0)
    for (_file, _line, name), (_cc, _nc, own, _cum, _callers) in stats.stats.items():
        phase = next((p for p, keys in PHASES.items() if any(k in name for k in keys)), "other")
        phases[phase] += own
    total = sum(phases.values())
    out = io.StringIO()
    out.write(f"ours on {job.case.title}, {calls} calls, per image:\n")
    for phase, seconds in phases.items():
        out.write(f"  {phase:30s} {seconds / calls * 1000:6.1f} ms  {seconds / total:4.0%}\n")
    out.write(f"  {'total':30s} {total / calls * 1000:6.1f} ms\n\n")
    stats.stream = out
    stats.sort_stats("tottime").print_stats(15)
    return out.getvalue()


# --- the report ----------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def report(
    jobs: list[Job],
    timings: Timings,
    memory: dict[str, dict[str, int]] | None,
    *,
    command: str,
    load_before: float,
    max_other: float,
) -> tuple[str, bool]:
    """The Markdown section, and whether the targets were met."""
    settings = jobs[0].settings
    boxes = ", ".join(f"{w}x{h}" for w, h in settings.thumbnail_sizes)
    extra = {
        "Pillow": Image.__version__,
        "pillow-heif": common.versions("pillow-heif")["pillow-heif"],
        "libjpeg-turbo": features.version("libjpeg_turbo") or "absent",
        "zlib": features.version("zlib") or "absent",
    }
    lines = [
        "## Image work: validate + thumbnails + metadata",
        "",
        "One image, its bytes in memory, three ways (details in the module's docstring): "
        "**ours** (`decode`, which decodes a JPEG at the reduced DCT scale that still covers "
        "the largest box, then `render_thumbnails` and `describe`), the **original**'s "
        "method (per size a full decode, `thumbnail()` and save, then a second copy of the "
        "bytes opened for the metadata) and the **floor** (Pillow `draft` + `load` alone, "
        f"at the same scale as ours). Boxes {boxes}; ours encodes baseline JPEG quality "
        f"{settings.jpeg_quality}, the original Pillow's default (baseline, quality 75). "
        "Generated photo-like images (texture at several scales, shapes, grain; JPEG "
        "quality 90 with a camera EXIF block).",
        "",
        f"`{command}`. A round is every method once on one image, in an order that "
        "rotates from round to round; a round that other processes overlapped (by more "
        f"than {max_other:g} cores, from /proc/stat) is measured again, and the quietest "
        "rounds are kept (per image below). Time is wall time per image: median, spread "
        "min-max and IQR; CPU is this process's CPU time (median): wall time well above it "
        "means the process waited for a core. Ratios are taken round by round: median "
        "(min-max, IQR). Peak memory: peak RSS (VmHWM, its mark reset through "
        "`/proc/self/clear_refs`) above the RSS just before the call, one fresh process "
        "per method and image, bytes already loaded; tracemalloc cannot see Pillow's "
        "pixel memory.",
        "",
        *common.machine_lines(extra),
        f"- Load: 1-minute load average {load_before:.2f} when the timed rounds started.",
        "",
    ]
    verdict = True
    for job in jobs:
        case = job.case
        wall = {method: samples(timings, case.slug, method) for method in METHODS}
        cpu = {method: samples(timings, case.slug, method, cpu=True) for method in METHODS}
        speedup = common.paired_ratios(wall["original"], wall["ours"])
        over_floor = common.paired_ratios(wall["ours"], wall["floor"])
        ratio = {
            "original": f"{speedup.median:.1f}x slower than ours ({speedup.spread(digits=1)})",
            "ours": "",
            "floor": f"ours takes {over_floor.median:.2f}x the floor "
            f"({over_floor.spread(digits=2)})",
        }
        rows = []
        for method in METHODS:
            stats = common.summarize(wall[method])
            peak = common.mib(memory[case.slug][method]) if memory else "not measured"
            rows.append(
                [
                    method,
                    ms(stats.median),
                    stats.spread(scale=1000),
                    ms(common.summarize(cpu[method]).median),
                    peak,
                    ratio[method],
                ]
            )
        width, height = case.size
        decoded = f"; ours and the floor decode it at {_decoded(job)}" if job.draft_request else ""
        lines += [
            f"### {case.title}",
            "",
            f"{width}x{height}, {len(job.data) / 1e6:.1f} MB{decoded}. "
            f"Rounds: {timings[case.slug].describe()}.",
            "",
            common.markdown_table(
                [
                    "method",
                    "median ms",
                    "spread ms (min-max, IQR)",
                    "CPU ms",
                    "peak memory",
                    "ratio",
                ],
                rows,
                "lrrrrl",
            ),
            "",
        ]
        if case.target:
            fast = speedup.median >= TARGET_SPEEDUP
            close = over_floor.median <= TARGET_FLOOR
            verdict = fast and close
            lines += [
                f"Targets on the {case.title}: at least {TARGET_SPEEDUP:g}x faster than the "
                f"original's method: **{speedup.median:.1f}x, {_met(fast)}**; within "
                f"{TARGET_FLOOR:g}x of the floor: **{over_floor.median:.2f}x, {_met(close)}**.",
                "",
            ]
    per_image = common.summarize(samples(timings, "jpeg-2mp", "ours")).median
    lines += [
        f"**2-core compute limit** (2 MP JPEG): {COMPUTE_LIMIT_CORES} cores / ours' median "
        f"{ms(per_image)} ms = **{COMPUTE_LIMIT_CORES / per_image:.0f} images/s**: the most "
        "this machine could process if both cores did nothing but image work (no download, "
        "upload, Rekognition or Prefect overhead), assuming two processes scale perfectly.",
    ]
    return "\n".join(lines), verdict


def _decoded(job: Job) -> str:
    with Image.open(io.BytesIO(job.data)) as im:
        im.draft("RGB", job.draft_request)
        return f"{im.size[0]}x{im.size[1]}"


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


# --- placeholder, fingerprint, crops and formats (--media) ---------------------------------

MEDIA_SECTION = "image-media"
MEDIA_CASE = "jpeg-2mp"
TARGET_MEDIA_EXTRA = 0.30  # placeholder + hash + crops: at most 30% more than today's work
MEDIA_METHODS = ("today", "with media")
# Today's boxes, the small one cropped: what `IMAGE_PIPELINE_THUMBNAILS` would say as
# `640x480:fit:jpeg,100x100:entropy:jpeg`.
MEDIA_SPECS = [ThumbnailSpec((640, 480)), ThumbnailSpec((100, 100), "entropy")]
FORMATS = ("JPEG", "WEBP", "AVIF")


def with_media(job: Job) -> list[Size]:
    """Today's work with a cropped thumbnail, the placeholder and the fingerprint."""
    settings = job.settings
    image = decode(
        job.data,
        max_file_bytes=settings.max_file_bytes,
        max_pixels=settings.max_pixels,
        largest_box=job.largest_box,
        cover=True,
    )
    thumbs = render_thumbnails(
        image,
        MEDIA_SPECS,
        transparent_format=settings.transparent_format,
        jpeg_quality=settings.jpeg_quality,
    )
    smallest = min(thumbs, key=lambda thumb: thumb.width * thumb.height)
    assert smallest.pixels is not None
    placeholder(smallest.pixels)
    dhash(image.pixels)
    pixel_digest(image.pixels)
    describe(job.source, image)
    return [(thumb.width, thumb.height) for thumb in thumbs]


MEDIA_RUNNERS: dict[str, Callable[[Job], list[Size]]] = {"today": ours, "with media": with_media}


def media_round(job: Job, number: int) -> RoundTimes:
    shift = number % len(MEDIA_METHODS)
    order = MEDIA_METHODS[shift:] + MEDIA_METHODS[:shift]
    return {method: time_once(MEDIA_RUNNERS[method], job) for method in order}


def encode_costs(job: Job, repeats: int) -> dict[tuple[str, str], tuple[float, int]]:
    """Median seconds and bytes of encoding each box's thumbnail in each format."""
    image = decode_job(job)
    quality = job.settings.jpeg_quality
    costs: dict[tuple[str, str], tuple[float, int]] = {}
    for box in job.boxes:
        [fitted] = render_thumbnails(image, [box], jpeg_quality=quality)
        assert fitted.pixels is not None
        # Already at its size: rendering it again is the encode alone (no resize).
        resized = DecodedImage("PNG", *fitted.pixels.size, fitted.pixels.mode, 1, fitted.pixels)
        for fmt in FORMATS:
            spec = ThumbnailSpec(resized.pixels.size, "fit", fmt)  # type: ignore[arg-type]
            times, size = [], 0
            for _ in range(repeats):
                start = time.perf_counter()
                [thumb] = render_thumbnails(resized, [spec], jpeg_quality=quality)
                times.append(time.perf_counter() - start)
                size = len(thumb.data)
            costs[(fmt, f"{box[0]}x{box[1]}")] = (common.summarize(times).median, size)
    return costs


def media_report(
    job: Job,
    rounds: common.Rounds[RoundTimes],
    costs: dict[tuple[str, str], tuple[float, int]],
    *,
    command: str,
    load_before: float,
    max_other: float,
) -> tuple[str, bool]:
    wall = {m: [r[m][0] for r in rounds.results] for m in MEDIA_METHODS}
    cpu = {m: [r[m][1] for r in rounds.results] for m in MEDIA_METHODS}
    extra = common.paired_ratios(wall["with media"], wall["today"])
    # The verdict on CPU time: the work is one thread's, and on a shared machine wall time
    # also counts the waits for a core.
    extra_cpu = common.paired_ratios(cpu["with media"], cpu["today"])
    met = extra_cpu.median <= 1 + TARGET_MEDIA_EXTRA
    rows = [
        [
            method,
            ms(common.summarize(wall[method]).median),
            common.summarize(wall[method]).spread(scale=1000),
            ms(common.summarize(cpu[method]).median),
        ]
        for method in MEDIA_METHODS
    ]
    format_rows = [
        [fmt, box, f"{seconds * 1000:.1f}", f"{size / 1024:.1f}"]
        for (fmt, box), (seconds, size) in costs.items()
    ]
    lines = [
        "## Image work: placeholder, near-duplicate hash, crops and formats",
        "",
        f"The {job.case.title} ({job.case.size[0]}x{job.case.size[1]}), its bytes in memory. "
        "**today**: the pipeline's image work as above (decode, two fit JPEG thumbnails "
        "640x480 and 100x100, `describe`). **with media**: the same with the 100x100 "
        "thumbnail cropped to fill its box (`entropy`, the costlier crop), the placeholder "
        "(ThumbHash and dominant colour of the smallest thumbnail), and the fingerprint "
        "(dHash and SHA-256 of the decoded pixels). The DynamoDB query for `duplicate_of` is "
        "network, not image work, and is not in it.",
        "",
        f"`{command}`. Rounds as above (each method once, order rotating, rounds that other "
        f"processes overlapped by more than {max_other:g} cores measured again); "
        f"{rounds.describe()}. The machine is shared with other engineers' work: the "
        "figures are indicative, the ratio (taken round by round) less so than the times.",
        "",
        *common.machine_lines({"Pillow": Image.__version__}),
        f"- Load: 1-minute load average {load_before:.2f} when the timed rounds started.",
        "",
        common.markdown_table(
            ["method", "median ms", "spread ms (min-max, IQR)", "CPU ms"], rows, "lrrr"
        ),
        "",
        f"With media / today, CPU time: **{extra_cpu.median:.2f}x** "
        f"({extra_cpu.spread(digits=2)}); wall time: {extra.median:.2f}x "
        f"({extra.spread(digits=2)}). Target, on CPU time (one thread's work; wall time "
        f"also counts waits for a core): at most {1 + TARGET_MEDIA_EXTRA:.2f}x: "
        f"**{_met(met)}**.",
        "",
        "Encode cost of one thumbnail per format (the resize excluded; median of "
        f"{ENCODE_REPEATS} encodes; WebP quality 80 method 2 (90 with transparency), "
        "AVIF quality 60 at libavif speed 10, "
        f"JPEG quality {job.settings.jpeg_quality} baseline):",
        "",
        common.markdown_table(["format", "box", "encode ms", "KiB"], format_rows, "llrr"),
    ]
    return "\n".join(lines), met


ENCODE_REPEATS = 7


def run_media(args: argparse.Namespace, settings: Settings) -> int:
    case = CASES_BY_SLUG[MEDIA_CASE]
    job = prepare(case, make_file(case), settings)
    load_before = common.wait_for_quiet(args.max_load, args.wait)
    rounds = common.quiet_rounds(
        lambda number: media_round(job, number),
        runs=args.runs,
        warmup=args.warmup,
        max_other=args.max_other,
        max_rounds=args.max_rounds or 4 * args.runs,
    )
    costs = encode_costs(job, ENCODE_REPEATS)
    command = f"python -m {MODULE} --media --runs {args.runs} --warmup {args.warmup}"
    section, met = media_report(
        job, rounds, costs, command=command, load_before=load_before, max_other=args.max_other
    )
    print(section)
    if args.output:
        common.write_section(args.output, MEDIA_SECTION, section)
        print(f"\nwritten to {args.output}", file=sys.stderr)
    if not met:
        print("the target was NOT met", file=sys.stderr)
    return 0


# --- command line --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="rounds kept (default 7)")
    parser.add_argument("--warmup", type=int, default=1, help="rounds not counted (default 1)")
    parser.add_argument(
        "--output",
        type=Path,
        help="Markdown file whose image-work section is written or replaced (BENCHMARKS.md)",
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory runs")
    parser.add_argument(
        "--max-load",
        type=float,
        default=1.0,
        help="before starting, wait until the 1-minute load average is below this (1.0)",
    )
    parser.add_argument(
        "--wait", type=float, default=600.0, help="longest such wait, seconds (default 600)"
    )
    parser.add_argument(
        "--max-other",
        type=float,
        default=0.25,
        help="a round counts as quiet if other processes used at most this many cores (0.25)",
    )
    parser.add_argument(
        "--max-rounds",
        type=int,
        help="measure at most this many rounds to find quiet ones (default 4 x runs)",
    )
    parser.add_argument(
        "--profile", metavar="CASE", choices=sorted(CASES_BY_SLUG), help="cProfile ours and stop"
    )
    parser.add_argument(
        "--media",
        action="store_true",
        help="measure placeholder, hash, crops and formats on the 2 MP JPEG instead",
    )
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)  # METHOD CASE PATH
    args = parser.parse_args(argv)

    if args.child:
        child(*args.child)
        return 0
    settings = get_settings()
    if args.media:
        return run_media(args, settings)
    if args.profile:
        case = CASES_BY_SLUG[args.profile]
        print(profile(prepare(case, make_file(case), settings)))
        return 0

    with tempfile.TemporaryDirectory(prefix="bench-image-work-") as tmp:
        paths: dict[str, Path] = {}
        jobs = []
        for case in CASES:
            data = make_file(case)
            paths[case.slug] = Path(tmp) / f"{case.slug}.{case.extension}"
            paths[case.slug].write_bytes(data)
            job = prepare(case, data, settings)
            check_same_decode(job)
            jobs.append(job)
        print("images generated", file=sys.stderr)
        load_before = common.wait_for_quiet(args.max_load, args.wait)
        timings = measure_times(
            jobs,
            runs=args.runs,
            warmup=args.warmup,
            max_other=args.max_other,
            max_rounds=args.max_rounds or 4 * args.runs,
        )
        memory = None if args.no_memory else measure_memory(paths)
    command = f"python -m {MODULE} --runs {args.runs} --warmup {args.warmup}"
    section, met = report(
        jobs,
        timings,
        memory,
        command=command,
        load_before=load_before,
        max_other=args.max_other,
    )
    print(section)
    if args.output:
        common.write_section(args.output, SECTION, section)
        print(f"\nwritten to {args.output}", file=sys.stderr)
    if not met:
        print("the targets were NOT met", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
