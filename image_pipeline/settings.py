"""Every option of the pipeline, declared once, read from `IMAGE_PIPELINE_*` variables.

The README's configuration table mirrors this module; `tests/test_settings.py` keeps
the two in step.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Any, Literal

from PIL import features
from pydantic import Field, Json, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from image_pipeline.models import Crop, OutputFormat, Size, ThumbnailSpec

MB = 1024 * 1024
GiB = 1024 * MB

# The memory the local worker's images may take: `worker_limit` (2) runs at once, each with
# `images_at_once` (2) images in flight. An image holds its download (up to
# `max_file_bytes`) and decodes it: the costliest we accept, an RGBA WebP, peaks at 17 bytes
# a pixel (BENCHMARKS.md, "Image memory"). So the default pixel limit:
# 4 x (50 MiB + 25 MP x 17 B) = 1.8 GiB, within 2 GiB.
MEMORY_BUDGET_BYTES = 2 * GiB


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="IMAGE_PIPELINE_", frozen=True)

    # --- AWS resources -------------------------------------------------------------
    uploads_bucket: str = Field(
        "image-pipeline-uploads", description="Bucket whose uploads are processed."
    )
    uploads_prefix: str = Field(
        "uploads/", description="Only keys under this prefix are processed."
    )
    thumbnails_bucket: str = Field(
        "image-pipeline-thumbnails", description="Bucket that receives the thumbnails."
    )
    table_name: str = Field("ImageProcessingDb", description="DynamoDB table of image records.")
    topic_name: str = Field(
        "ImageProcessingNotifications", description="SNS topic for success/failure notices."
    )
    topic_arn: str | None = Field(
        None, description="ARN of that topic. Unset: looked up by name (needs sns:CreateTopic)."
    )

    # --- AWS access ------------------------------------------------------------------
    aws_credentials_block: str | None = Field(
        None,
        description="Name of a prefect-aws AwsCredentials block to use. Unset: build one from "
        "the standard AWS environment plus the endpoint and region below.",
    )
    aws_endpoint_url: str | None = Field(
        None, description="AWS endpoint override, e.g. the local emulator http://127.0.0.1:4566."
    )
    aws_region: str = Field("us-east-1", description="AWS region.")

    # --- Validation ------------------------------------------------------------------
    max_file_bytes: int = Field(50 * MB, gt=0, description="Largest accepted upload in bytes.")
    max_pixels: int = Field(
        25_000_000,
        gt=0,
        description="Largest accepted width x height, read from the header; the default keeps "
        "4 images in flight within MEMORY_BUDGET_BYTES.",
    )

    images_at_once: int = Field(
        2,
        gt=0,
        description="Images of one process-images run in flight at once (threads; Pillow "
        "releases the GIL); each holds its download and its pixels.",
    )

    # --- Thumbnails ------------------------------------------------------------------
    thumbnail_sizes: Annotated[list[Size], NoDecode] = Field(
        default_factory=lambda: [(100, 100), (640, 480)],
        description="Boxes the thumbnails fit inside, as `WxH,WxH`.",
    )
    thumbnails: Annotated[list[ThumbnailSpec] | None, NoDecode] = Field(
        None,
        description="Each thumbnail as `WxH[:fit|cover|entropy][:jpeg|webp|avif]`, "
        "comma-separated, e.g. `100x100:cover:webp,640x480:fit:jpeg`. Unset: the boxes of "
        "THUMBNAIL_SIZES, fit, JPEG. `cover` fills the box and crops the centre, `entropy` "
        "crops where the picture is busiest.",
    )
    transparent_format: Literal["PNG", "WEBP"] = Field(
        "PNG", description="Format of thumbnails of images with transparency."
    )
    jpeg_quality: int = Field(85, ge=1, le=95, description="Quality of JPEG thumbnails.")

    # --- Reports ----------------------------------------------------------------------
    report_link_seconds: int = Field(
        7 * 24 * 3600,
        gt=0,
        le=7 * 24 * 3600,
        description="How long the thumbnail links of a run's report work on AWS: presigned "
        "URLs, at most 7 days (SigV4's limit). With an emulator endpoint, plain links.",
    )

    # --- Labels (Rekognition) --------------------------------------------------------
    labels: Literal["auto", "rekognition", "local", "off"] = Field(
        "auto",
        description="`rekognition`, `local` (a MobileNetV2 ImageNet classifier on the CPU, "
        "no AWS), `off`, or `auto`: Rekognition on real AWS, off when an endpoint override "
        "(a local emulator, which has no Rekognition) is set.",
    )
    model_cache_dir: str | None = Field(
        None,
        description="Where `local` labels keep the ONNX model converted on first use. Unset: "
        "`$XDG_CACHE_HOME/image-pipeline` (`~/.cache/image-pipeline`).",
    )
    rekognition_endpoint_url: str | None = Field(
        None, description="Rekognition endpoint override (a stand-in service in tests)."
    )
    rekognition_max_labels: int = Field(
        10, ge=1, le=1000, description="MaxLabels for detect_labels (and `local` labels)."
    )
    rekognition_min_confidence: float = Field(
        75.0, ge=0, le=100, description="MinConfidence for detect_labels (and `local` labels)."
    )

    # --- Moderation (Rekognition DetectModerationLabels) -------------------------------
    moderation: Literal["auto", "rekognition", "off"] = Field(
        "auto",
        description="`rekognition`, `off`, or `auto`: on with real AWS, off when an endpoint "
        "override (a local emulator, which has no Rekognition) is set.",
    )
    moderation_min_confidence: float = Field(
        50.0,
        ge=0,
        le=100,
        description="MinConfidence for detect_moderation_labels: the labels recorded.",
    )
    moderation_flag_confidence: float = Field(
        80.0,
        ge=0,
        le=100,
        description="A moderation label at or above this confidence makes the image FLAGGED: "
        "its thumbnails go under `quarantine/` and a moderation notice is sent.",
    )

    # --- Near-duplicates ---------------------------------------------------------------
    skip_labels_of_duplicates: bool = Field(
        False,
        description="An image whose pixels duplicate an earlier image's (`duplicate_of`) "
        "copies that image's labels instead of calling Rekognition, when it has some.",
    )

    # --- Privacy -----------------------------------------------------------------------
    record_gps: bool = Field(
        False,
        description="Record the EXIF GPS position (`gps_*`) in the item. Off: where a photo "
        "was taken never reaches the table, the API or the report.",
    )

    # --- Chaos testing ---------------------------------------------------------------
    fault_rate: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Share of AWS calls answered 503 before they are sent (`make soak`).",
    )
    crash_marker: str | None = Field(
        None,
        description="Chaos testing: the flow-run process kills itself (SIGKILL) when it "
        "validates a key that contains this text (the isolation tests).",
    )

    # --- Event webhook and API -------------------------------------------------------
    webhook_api_key: SecretStr | None = Field(
        None,
        description="Key that EventBridge's connection sends in the `x-api-key` header; it "
        "admits events only. The webhook refuses every request while it is unset.",
    )
    operator_api_key: SecretStr | None = Field(
        None,
        description="Key operators send as `Authorization: Bearer <key>` to read and list "
        "records and to reprocess; those routes refuse every request while it is unset.",
    )
    webhook_max_body_bytes: int = Field(
        262_144, gt=0, description="Largest webhook body accepted (EventBridge events are <256 KB)."
    )
    batch_window_seconds: float = Field(
        1.0,
        ge=0,
        description="The longest the webhook holds the first upload of a batch for others "
        "to join. EventBridge waits 5 s for an answer: the window plus Prefect's answer must "
        "stay well under it.",
    )
    batch_quiet_seconds: float = Field(
        0.1,
        ge=0,
        description="A batch goes once no upload has joined it for this long (or when its "
        "window ends, or when full): a lone upload waits only this, a burst fills batches.",
    )
    batch_max_images: int = Field(
        100,
        ge=1,
        le=200,
        description="Uploads per Prefect event; a full batch is sent at once. At most 200, so "
        "that even a batch of the longest keys stays under Prefect's 1.5 MB event limit.",
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Origins allowed by CORS, comma-separated; none by default (`*`: any).",
    )
    api_host: str = Field("127.0.0.1", description="Interface the API binds to.")

    # --- AWS: the ECS work pool (deployments/aws/worker.py) -------------------------------
    ecs_job_defaults: Annotated[Json[dict[str, Any]], NoDecode] = Field(
        "{}",  # settings validate their defaults: JSON text, like the variable
        description="JSON object: defaults of the ecs work pool's job variables (cluster, "
        "subnets, roles, logs, the flow runs' env), set by the AWS stack on the worker.",
    )

    # --- Local stack (`make up`) ---------------------------------------------------------
    ministack_port: int = Field(4566, description="Port of the local AWS emulator.")
    prefect_port: int = Field(4200, description="Port of the local Prefect server and UI.")
    api_port: int = Field(8000, description="Port of the status API.")
    worker_port: int = Field(8080, description="Port of the worker's health check.")
    postgres_port: int = Field(5433, description="Port of the local Prefect server's PostgreSQL.")
    worker_limit: int = Field(2, gt=0, description="Flow runs the local worker runs at once.")
    state_dir: str = Field(".state", description="Where the local stack keeps its data and logs.")

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _parse_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("thumbnail_sizes", mode="before")
    @classmethod
    def _parse_sizes(cls, value: object) -> object:
        if isinstance(value, str):
            return [_parse_size(part) for part in value.split(",") if part.strip()]
        return value

    @field_validator("thumbnail_sizes")
    @classmethod
    def _check_sizes(cls, sizes: list[Size]) -> list[Size]:
        _check_sizes_of(sizes)
        return sorted(set(sizes), key=lambda s: s[0] * s[1], reverse=True)

    @field_validator("thumbnails", mode="before")
    @classmethod
    def _parse_thumbnails(cls, value: object) -> object:
        if isinstance(value, str):
            return [_parse_spec(part) for part in value.split(",") if part.strip()]
        return value

    @field_validator("thumbnails")
    @classmethod
    def _check_thumbnails(cls, specs: list[ThumbnailSpec] | None) -> list[ThumbnailSpec] | None:
        if specs is None:
            return None
        _check_sizes_of([spec.box for spec in specs])
        if any(spec.format == "AVIF" for spec in specs) and not features.check("avif"):
            raise ValueError("this Pillow was built without AVIF: choose jpeg or webp")
        labels = [spec.label for spec in specs]
        if len(set(labels)) != len(labels):
            # The box names the thumbnail in the record and in its key.
            raise ValueError("each thumbnail box may appear once in THUMBNAILS")
        return sorted(specs, key=lambda s: s.box[0] * s.box[1], reverse=True)

    @model_validator(mode="after")
    def _one_thumbnail_setting(self) -> Settings:
        if self.thumbnails is not None and "thumbnail_sizes" in self.model_fields_set:
            raise ValueError("set THUMBNAILS or THUMBNAIL_SIZES, not both")
        return self

    @property
    def thumbnail_specs(self) -> list[ThumbnailSpec]:
        """The thumbnails to make, largest box first: THUMBNAILS, or THUMBNAIL_SIZES as fit
        JPEGs (the pipeline's behaviour before THUMBNAILS existed)."""
        if self.thumbnails is not None:
            return list(self.thumbnails)
        return [ThumbnailSpec(box) for box in self.thumbnail_sizes]

    @property
    def labels_backend(self) -> Literal["rekognition", "local", "off"]:
        if self.labels == "local":
            return "local"
        return "rekognition" if self.labels_enabled else "off"

    @property
    def labels_enabled(self) -> bool:
        """Whether Rekognition labels the images."""
        if self.labels == "auto":
            return self.aws_endpoint_url is None or self.rekognition_endpoint_url is not None
        return self.labels == "rekognition"

    @property
    def moderation_enabled(self) -> bool:
        if self.moderation == "auto":
            return self.aws_endpoint_url is None or self.rekognition_endpoint_url is not None
        return self.moderation == "rekognition"


def _parse_size(text: str) -> Size:
    width, sep, height = text.strip().lower().partition("x")
    if not sep or not width.isdigit() or not height.isdigit():
        raise ValueError(f"thumbnail size {text!r} is not of the form WIDTHxHEIGHT")
    return int(width), int(height)


def _check_sizes_of(sizes: list[Size]) -> None:
    if not sizes:
        raise ValueError("at least one thumbnail size is needed")
    if any(w <= 0 or h <= 0 for w, h in sizes):
        raise ValueError("thumbnail sizes must be positive")


_CROPS: dict[str, Crop] = {"fit": "fit", "cover": "cover", "entropy": "entropy"}
_FORMATS: dict[str, OutputFormat] = {"jpeg": "JPEG", "jpg": "JPEG", "webp": "WEBP", "avif": "AVIF"}


def _parse_spec(text: str) -> ThumbnailSpec:
    """`WxH[:crop][:format]`, e.g. `100x100:cover:webp`; crop and format in either order."""
    size, *options = [part.strip().lower() for part in text.strip().split(":")]
    box = _parse_size(size)
    crops = [o for o in options if o in _CROPS]
    formats = [o for o in options if o in _FORMATS]
    unknown = [o for o in options if o not in _CROPS and o not in _FORMATS]
    if unknown or len(crops) > 1 or len(formats) > 1:
        raise ValueError(
            f"thumbnail {text.strip()!r} is not of the form WxH[:fit|cover|entropy]"
            "[:jpeg|webp|avif]"
        )
    return ThumbnailSpec(
        box,
        crop=_CROPS[crops[0]] if crops else "fit",
        format=_FORMATS[formats[0]] if formats else "JPEG",
    )


@lru_cache
def get_settings() -> Settings:
    return Settings()
