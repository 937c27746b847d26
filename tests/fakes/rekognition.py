"""A stand-in Amazon Rekognition (DetectLabels, DetectModerationLabels) that speaks the real
wire protocol.

A real HTTP server on 127.0.0.1 that a real boto3 client reaches through `endpoint_url`:
AWS JSON 1.1 (`POST /`, `X-Amz-Target: RekognitionService.DetectLabels`), errors as
`{"__type": ..., "Message": ...}` with the documented HTTP status, so botocore turns them
into `ClientError`s with the right code. It enforces DetectLabels' documented contract
(https://docs.aws.amazon.com/rekognition/latest/APIReference/API_DetectLabels.html and
https://docs.aws.amazon.com/rekognition/latest/dg/limits.html):

- `MaxLabels` an integer 0..1000, `MinConfidence` a number 0..100 (default 55);
- `Image` is exactly one of `Bytes` (base64, at most 5 242 880 bytes) or
  `S3Object` (`Bucket`, `Name`, optional `Version`; at most 15 MB), read from S3;
- JPEG or PNG only (`InvalidImageFormatException`); at least 80 px a side
  (`InvalidParameterException`); at most 10000 px a side or over the byte limits
  (`ImageTooLargeException`); an S3 object it cannot read (`InvalidS3ObjectException`).

DetectModerationLabels
(https://docs.aws.amazon.com/rekognition/latest/APIReference/API_DetectModerationLabels.html)
takes the same `Image` with the same limits and errors, `MinConfidence` 0..100 (default
50), and answers `ModerationLabels` ({Name, Confidence, ParentName, TaxonomyLevel}) and
`ModerationModelVersion`; its errors add `HumanLoopQuotaExceededException`.

Labels are deterministic from the content: "Image" at 99 and a colour label from the
mean colour ("Red", "Green", "Blue" or "Gray"). Moderation labels too: an image whose
mean red and blue are both at least 24 above its green (magenta-ish) is "Explicit" >
"Explicit Nudity", at a confidence of 50 + 49.5 * (min(R, B) - G) / 255 (pure magenta
99.5, (200, 100, 200) 69.4, its child 0.5 less); any other image has none.

    with FakeRekognition(s3_endpoint_url=ministack) as fake:
        fake.fail_next(3, "ThrottlingException")
        fake.hold(); ...; fake.held.wait(); ...; fake.release()
        ... boto3.client("rekognition", endpoint_url=fake.url) ...
        fake.requests[-1].image_source  # "Bytes" or "S3Object"
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import threading
import uuid
import warnings
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from PIL import Image, ImageStat

TARGET = "RekognitionService.DetectLabels"
MODERATION_TARGET = "RekognitionService.DetectModerationLabels"
CONTENT_TYPE = "application/x-amz-json-1.1"

MAX_BYTES = 5_242_880  # Image.Bytes: "Maximum length of 5242880"
MAX_S3_BYTES = 15 * 1024 * 1024  # "Maximum image size stored as an Amazon S3 object ... 15 MB"
MIN_SIDE = 80
MAX_SIDE = 10_000
MAX_LABELS_LIMIT = 1000  # "The default and upper limit is 1000 labels"
DEFAULT_MIN_CONFIDENCE = 55.0
DEFAULT_MODERATION_MIN_CONFIDENCE = 50.0  # "greater than or equal to 50 percent"
MODERATION_MODEL_VERSION = "7.0"
MODERATION_MIN_EXCESS = 24
IMAGE_CONFIDENCE = 99.0
LABEL_MODEL_VERSION = "3.0"
HOLD_LIMIT_SECONDS = 300  # a held request is answered after this even if never released

# The API reference lists ThrottlingException and InternalServerError as HTTP 500,
# every other DetectLabels error as HTTP 400.
DEFAULT_STATUS = {"ThrottlingException": 500, "InternalServerError": 500}

MESSAGES = {
    "AccessDeniedException": "User is not authorized to perform this action",
    "HumanLoopQuotaExceededException": "The number of in-progress human reviews you have "
    "has exceeded the number allowed.",
    "ImageTooLargeException": "Image size is too large.",
    "InternalServerError": "Internal server error",
    "InvalidImageFormatException": "Request has invalid image format",
    "InvalidParameterException": "Request has invalid parameters",
    "InvalidS3ObjectException": "Unable to get object metadata from S3. Check object key, "
    "region and/or access permissions.",
    "ProvisionedThroughputExceededException": "Provisioned Rate exceeded.",
    "ThrottlingException": "Service Unavailable",
}


class RekognitionError(Exception):
    def __init__(self, code: str, message: str | None = None, status: int | None = None):
        super().__init__(message or MESSAGES.get(code, code))
        self.code = code
        self.message = message or MESSAGES.get(code, code)
        self.status = status or DEFAULT_STATUS.get(code, 400)


@dataclass
class RecordedRequest:
    """One request as the fake received it, and what it answered."""

    target: str | None
    headers: dict[str, str]
    body: dict[str, Any]
    status: int = 0
    error: str | None = None  # the error code answered, None on success
    response: dict[str, Any] = field(default_factory=dict)

    @property
    def image(self) -> dict[str, Any]:
        image = self.body.get("Image")
        return image if isinstance(image, dict) else {}

    @property
    def image_source(self) -> str | None:
        """ "Bytes" or "S3Object": how the image was given."""
        return next((name for name in ("Bytes", "S3Object") if name in self.image), None)

    @property
    def image_bytes(self) -> bytes | None:
        data = self.image.get("Bytes")
        return base64.b64decode(data) if isinstance(data, str) else None


class FakeRekognition:
    """The server and its state. Start with `start()` or `with`; stop with `stop()`."""

    def __init__(self, s3_endpoint_url: str | None = None, region: str = "us-east-1") -> None:
        self.s3_endpoint_url = s3_endpoint_url
        self.region = region
        self.requests: list[RecordedRequest] = []
        self._failures: deque[RekognitionError] = deque()
        self.held = threading.Event()  # a request is waiting for `release()`
        self._released = threading.Event()
        self._released.set()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._s3: Any = None

    # --- lifecycle -------------------------------------------------------------------
    def start(self) -> FakeRekognition:
        fake = self

        class Handler(_Handler):
            owner = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-rekognition",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeRekognition:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the fake Rekognition is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # --- test controls ---------------------------------------------------------------
    def fail_next(
        self,
        n: int = 1,
        code: str = "ThrottlingException",
        *,
        status: int | None = None,
        message: str | None = None,
    ) -> None:
        """Answer the next `n` requests with this error (HTTP status as documented)."""
        with self._lock:
            self._failures.extend(RekognitionError(code, message, status) for _ in range(n))

    def hold(self) -> None:
        """Keep requests waiting, unanswered, until `release()`: a hung Rekognition."""
        self.held.clear()
        self._released.clear()

    def release(self) -> None:
        self._released.set()

    def reset(self) -> None:
        self.release()
        with self._lock:
            self.requests.clear()
            self._failures.clear()

    # --- the service -----------------------------------------------------------------
    def handle(self, target: str | None, headers: dict[str, str], raw: bytes) -> tuple[int, dict]:
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
            parse_error: RekognitionError | None = RekognitionError(
                "SerializationException", "Request body is not JSON", 400
            )
        else:
            parse_error = None
        if not self._released.is_set():
            self.held.set()
            self._released.wait(HOLD_LIMIT_SECONDS)
        record = RecordedRequest(target=target, headers=headers, body=body)
        with self._lock:
            self.requests.append(record)
            injected = self._failures.popleft() if self._failures else None
        try:
            if injected is not None:
                raise injected
            if parse_error is not None:
                raise parse_error
            operations = {
                TARGET: self.detect_labels,
                MODERATION_TARGET: self.detect_moderation_labels,
            }
            if target not in operations:
                raise RekognitionError(
                    "UnknownOperationException", f"Unknown operation {target}", 400
                )
            if not headers.get("content-type", "").startswith(CONTENT_TYPE):
                raise RekognitionError(
                    "SerializationException", f"Content-Type must be {CONTENT_TYPE}", 400
                )
            result = operations[target](body)
        except RekognitionError as exc:
            record.status, record.error = exc.status, exc.code
            record.response = {
                "__type": exc.code,
                "Code": exc.code,
                "Logref": str(uuid.uuid4()),
                "Message": exc.message,
            }
            return exc.status, record.response
        record.status, record.response = 200, result
        return 200, result

    def detect_labels(self, body: dict[str, Any]) -> dict[str, Any]:
        max_labels = body.get("MaxLabels", MAX_LABELS_LIMIT)
        if (
            isinstance(max_labels, bool)
            or not isinstance(max_labels, int)
            or not 0 <= max_labels <= MAX_LABELS_LIMIT
        ):
            raise RekognitionError(
                "InvalidParameterException", f"MaxLabels must be 0..{MAX_LABELS_LIMIT}"
            )
        min_confidence = _min_confidence(body, DEFAULT_MIN_CONFIDENCE)
        data = self._image_data(body.get("Image"))
        labels = _labels_for(_open(data))
        labels = [label for label in labels if label["Confidence"] >= min_confidence]
        return {"Labels": labels[:max_labels], "LabelModelVersion": LABEL_MODEL_VERSION}

    def detect_moderation_labels(self, body: dict[str, Any]) -> dict[str, Any]:
        min_confidence = _min_confidence(body, DEFAULT_MODERATION_MIN_CONFIDENCE)
        data = self._image_data(body.get("Image"))
        labels = _moderation_labels_for(_open(data))
        return {
            "ModerationLabels": [m for m in labels if m["Confidence"] >= min_confidence],
            "ModerationModelVersion": MODERATION_MODEL_VERSION,
            "ContentTypes": [],
        }

    def _image_data(self, image: Any) -> bytes:
        if not isinstance(image, dict) or ("Bytes" in image) == ("S3Object" in image):
            raise RekognitionError(
                "InvalidParameterException", "Image needs exactly one of Bytes or S3Object"
            )
        if "Bytes" in image:
            try:
                data = base64.b64decode(image["Bytes"], validate=True)
            except (binascii.Error, TypeError, ValueError) as exc:
                raise RekognitionError("InvalidParameterException", "Bytes is not base64") from exc
            if not data:
                raise RekognitionError("InvalidParameterException", "Bytes is empty")
            if len(data) > MAX_BYTES:
                raise RekognitionError("ImageTooLargeException")
            return data
        return self._read_s3(image["S3Object"])

    def _read_s3(self, s3_object: Any) -> bytes:
        if (
            not isinstance(s3_object, dict)
            or not s3_object.get("Bucket")
            or not s3_object.get("Name")
        ):
            raise RekognitionError("InvalidS3ObjectException", "Request has invalid S3 object.")
        extra = {"VersionId": s3_object["Version"]} if s3_object.get("Version") else {}
        try:
            obj = self._s3_client().get_object(
                Bucket=s3_object["Bucket"], Key=s3_object["Name"], **extra
            )
        except ClientError as exc:
            raise RekognitionError("InvalidS3ObjectException") from exc
        body = obj["Body"]
        try:
            if obj["ContentLength"] > MAX_S3_BYTES:
                raise RekognitionError("ImageTooLargeException")
            return body.read()
        finally:
            body.close()

    def _s3_client(self) -> Any:
        with self._lock:
            if self._s3 is None:
                if not self.s3_endpoint_url:
                    raise RekognitionError("InvalidS3ObjectException", "no S3 configured")
                self._s3 = boto3.client(
                    "s3",
                    endpoint_url=self.s3_endpoint_url,
                    region_name=self.region,
                    aws_access_key_id="test",
                    aws_secret_access_key="test",
                    config=Config(retries={"mode": "standard", "max_attempts": 2}),
                )
            return self._s3


def _min_confidence(body: dict[str, Any], default: float) -> float:
    value = body.get("MinConfidence", default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 100:
        raise RekognitionError("InvalidParameterException", "MinConfidence must be 0..100")
    return float(value)


def _open(data: bytes) -> Image.Image:
    """The image if Rekognition would take it; its documented error otherwise."""
    if not (data.startswith(b"\xff\xd8\xff") or data.startswith(b"\x89PNG\r\n\x1a\n")):
        raise RekognitionError("InvalidImageFormatException")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError as exc:
            raise RekognitionError("ImageTooLargeException") from exc
        except Exception as exc:
            raise RekognitionError("InvalidImageFormatException") from exc
    width, height = image.size
    if min(width, height) < MIN_SIDE:
        raise RekognitionError(
            "InvalidParameterException",
            f"Request has invalid parameters: image is {width}x{height}, "
            f"the minimum is {MIN_SIDE} px a side",
        )
    if max(width, height) > MAX_SIDE:
        raise RekognitionError(
            "ImageTooLargeException",
            f"Image size is too large: {width}x{height}, the maximum is {MAX_SIDE} px a side",
        )
    return image


def _mean_colour(image: Image.Image) -> list[float]:
    try:
        image.draft("RGB", (64, 64))
        small = image.convert("RGB")
        small.thumbnail((64, 64))
    except Exception as exc:  # truncated or corrupt pixel data
        raise RekognitionError("InvalidImageFormatException") from exc
    return ImageStat.Stat(small).mean


def _moderation_labels_for(image: Image.Image) -> list[dict[str, Any]]:
    red, green, blue = _mean_colour(image)
    excess = min(red, blue) - green
    if excess < MODERATION_MIN_EXCESS:  # JPEG shifts colours a little: grey stays clean
        return []
    confidence = 50 + 49.5 * excess / 255
    return [
        {"Name": "Explicit", "Confidence": confidence, "ParentName": "", "TaxonomyLevel": 1},
        {
            "Name": "Explicit Nudity",
            "Confidence": confidence - 0.5,
            "ParentName": "Explicit",
            "TaxonomyLevel": 2,
        },
    ]


def _labels_for(image: Image.Image) -> list[dict[str, Any]]:
    mean = _mean_colour(image)
    order = sorted(range(3), key=lambda i: mean[i], reverse=True)
    top, second, low = (mean[i] for i in order)
    if top - low < 24:
        colour, confidence = "Gray", 99.0 - (top - low) / 2
    else:
        colour = ("Red", "Green", "Blue")[order[0]]
        confidence = 55 + 44.5 * (top - second) / 255
    labels = [_label("Image", IMAGE_CONFIDENCE), _label(colour, confidence)]
    return sorted(labels, key=lambda label: label["Confidence"], reverse=True)


def _label(name: str, confidence: float) -> dict[str, Any]:
    return {
        "Name": name,
        "Confidence": confidence,
        "Instances": [],
        "Parents": [],
        "Aliases": [],
        "Categories": [],
    }


class _Handler(BaseHTTPRequestHandler):
    owner: FakeRekognition
    protocol_version = "HTTP/1.1"
    timeout = 10  # close idle keep-alive connections

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        status, payload = self.owner.handle(self.headers.get("X-Amz-Target"), headers, raw)
        self._send(status, payload)

    def do_GET(self) -> None:
        self._send(404, {"__type": "UnknownOperationException", "Message": "POST / only"})

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass
