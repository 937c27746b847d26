"""Benchmark: what local labels (IMAGE_PIPELINE_LABELS=local) cost a worker, on their own.

    python -m benchmarks.bench_local_labels [--rounds N] [--output BENCHMARKS.md]

Three figures, each in a fresh process, as every flow run is one:
- the first use ever: reading torchvision's weights and converting them to ONNX (once per
  machine, then cached);
- a run's start: importing onnxruntime and loading the cached model (once per flow run);
- each image: the labels step's work on the decoded pixels the pipeline already has
  (`detect_local_labels`: resize and crop, MobileNetV2 on one thread, the WordNet
  labels), CPU time per image, median of `--rounds`.
Memory is the process's resident set: before onnxruntime, with the model loaded, and its
peak (VmHWM) after the images. The images are the scikit-image photos the tests use and a
2 MP JPEG (coffee, scaled up), decoded by `decode` as the validate step does.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import common

SECTION = "local-labels"
PHOTOS = ("chelsea", "coffee", "astronaut", "rocket")
MiB = 1024 * 1024


def rss() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def images() -> dict[str, bytes]:
    from PIL import Image

    from deployments.local.samples import PHOTOS as FOLDER

    found = {name: (FOLDER / f"{name}.jpg").read_bytes() for name in PHOTOS}
    with Image.open(FOLDER / "coffee.jpg") as coffee:
        big = coffee.convert("RGB").resize((1732, 1155), Image.Resampling.LANCZOS)  # 2.0 MP
    buffer = io.BytesIO()
    big.save(buffer, "JPEG", quality=90)
    found["coffee 2 MP"] = buffer.getvalue()
    return found


def child_convert(cache: str) -> dict:
    import os

    os.environ["IMAGE_PIPELINE_MODEL_CACHE_DIR"] = cache
    from image_pipeline import classifier

    start_cpu, start = time.process_time(), time.perf_counter()
    classifier.prepare()  # the cache is empty: converts
    return {
        "cpu": time.process_time() - start_cpu,
        "wall": time.perf_counter() - start,
        "peak": common.peak_rss(),
    }


def child_run(cache: str, rounds: int) -> dict:
    import os

    os.environ["IMAGE_PIPELINE_MODEL_CACHE_DIR"] = cache
    from image_pipeline.imaging.decode import decode
    from image_pipeline.labels import detect_local_labels

    before = rss()
    start_cpu, start = time.process_time(), time.perf_counter()
    from image_pipeline import classifier

    classifier.session()
    load = {"cpu": time.process_time() - start_cpu, "wall": time.perf_counter() - start}
    loaded = rss()
    results = {}
    for name, data in images().items():
        image = decode(data, max_file_bytes=50 * MiB, max_pixels=25_000_000, largest_box=(640, 480))
        detect_local_labels(image, max_labels=10, min_confidence=75)  # warm-up
        samples = []
        for _ in range(rounds):
            start_cpu = time.process_time()
            labels = detect_local_labels(image, max_labels=10, min_confidence=75)
            samples.append(time.process_time() - start_cpu)
        results[name] = {
            "size": f"{image.width}x{image.height}",
            "pixels": f"{image.pixels.width}x{image.pixels.height}",
            "cpu": samples,
            "labels": [f"{label['Name']} {label['Confidence']:.0f}" for label in labels.labels],
        }
    return {
        "load": load,
        "rss_before": before,
        "rss_loaded": loaded,
        "peak": common.peak_rss(),
        "images": results,
    }


def report(convert: dict, run: dict, rounds: int, command: str) -> str:
    rows = []
    for name, result in run["images"].items():
        stats = common.summarize(result["cpu"])
        rows.append(
            [
                name,
                result["size"],
                f"{stats.median * 1000:.1f}",
                stats.spread(1000),
                ", ".join(result["labels"]) or "(none at 75 % or more)",
            ]
        )
    table = common.markdown_table(
        ["image", "size", "CPU ms per image (median)", "min-max, IQR", "labels (>= 75 %)"],
        rows,
    )
    lines = [
        "## Local labels (IMAGE_PIPELINE_LABELS=local)",
        "",
        f"`{command}`",
        "",
        *common.machine_lines(common.versions("onnxruntime", "onnx", "pillow")),
        "",
        "MobileNetV2 (torchvision's ImageNet weights) under onnxruntime on one thread; the "
        f"labels step's work on the decoded pixels, CPU time, median of {rounds} rounds.",
        "",
        table,
        "",
        "| once | CPU s | wall s |",
        "|---|--:|--:|",
        f"| first use on a machine: weights to ONNX, cached | {convert['cpu']:.2f} | "
        f"{convert['wall']:.2f} |",
        f"| each flow run: import onnxruntime, load the cached model | {run['load']['cpu']:.2f} | "
        f"{run['load']['wall']:.2f} |",
        "",
        f"Worker memory (resident): {run['rss_before'] / MiB:.0f} MiB with the pipeline "
        f"imported, {run['rss_loaded'] / MiB:.0f} MiB with onnxruntime and the model loaded "
        f"(+{(run['rss_loaded'] - run['rss_before']) / MiB:.0f} MiB), peak "
        f"{run['peak'] / MiB:.0f} MiB after the images; the conversion peaks at "
        f"{convert['peak'] / MiB:.0f} MiB.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--output", type=Path, help="Markdown file whose section is written")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        kind, cache = args.child[0], args.child[1]
        result = child_convert(cache) if kind == "convert" else child_run(cache, args.rounds)
        print(json.dumps(result))
        return 0
    module = ["-m", "benchmarks.bench_local_labels"]
    with tempfile.TemporaryDirectory() as cache:
        convert = common.run_child([*module, "--child", "convert", cache])
        run = common.run_child([*module, "--rounds", str(args.rounds), "--child", "run", cache])
    command = "python -m benchmarks.bench_local_labels " + " ".join(argv or sys.argv[1:])
    section = report(convert, run, args.rounds, command.strip())
    print(section)
    if args.output:
        common.write_section(args.output, SECTION, section)
        print(f"\nwritten to {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
