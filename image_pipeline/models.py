"""Shapes of the data that crosses between the steps and the faces."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

from PIL import Image
from pydantic import BaseModel, ConfigDict

Size = tuple[int, int]

# File extension of each thumbnail format.
EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "AVIF": "avif"}

# How a thumbnail meets its box: `fit` inside it (aspect kept), or `cover` it and crop the
# overflow, at the centre (`cover`) or where the picture is busiest (`entropy`).
Crop = Literal["fit", "cover", "entropy"]
# What a thumbnail is encoded as; `JPEG` becomes the transparent format for an image with
# transparency, which JPEG cannot hold.
OutputFormat = Literal["JPEG", "WEBP", "AVIF"]


@dataclass(frozen=True)
class ThumbnailSpec:
    """One configured thumbnail: its box, how it meets the box, and its format."""

    box: Size
    crop: Crop = "fit"
    format: OutputFormat = "JPEG"

    @property
    def label(self) -> str:
        return f"{self.box[0]}x{self.box[1]}"


class Upload(BaseModel):
    """An upload as the event announces it: which object, and which version of it."""

    model_config = ConfigDict(extra="ignore")  # events carry more (size, sequencer, ids)

    bucket: str
    key: str
    etag: str | None = None


class SourceObject(BaseModel):
    """The uploaded object, as S3 describes it when the run starts."""

    bucket: str
    key: str
    etag: str
    size: int
    last_modified: datetime

    @property
    def filename(self) -> str:
        return self.key.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class DecodedImage:
    """A validated image: its header facts and its pixels, ready for thumbnails.

    `width`, `height` and `mode` describe the file as stored; `orientation` is its EXIF
    orientation (1-8, 1 when none), and `display_size` the size it is shown at. `pixels` is
    the first frame with the EXIF orientation applied, in RGB, RGBA, L or LA, possibly decoded
    at a reduced scale (never smaller than the largest thumbnail needs).
    """

    format: str
    width: int
    height: int
    mode: str
    frame_count: int
    pixels: Image.Image
    exif: dict[str, Any] = field(default_factory=dict)
    orientation: int = 1

    @property
    def display_size(self) -> Size:
        """Width and height after EXIF orientation: orientations 5-8 turn it a quarter."""
        turned = self.orientation in (5, 6, 7, 8)
        return (self.height, self.width) if turned else (self.width, self.height)

    @property
    def is_animated(self) -> bool:
        return self.frame_count > 1

    @property
    def has_alpha(self) -> bool:
        return self.pixels.mode in ("RGBA", "LA")


@dataclass(frozen=True)
class RenderedThumbnail:
    """One encoded thumbnail, before upload."""

    box: Size
    width: int
    height: int
    format: str  # "JPEG", "PNG", "WEBP" or "AVIF"
    content_type: str
    data: bytes
    # The pixels before encoding: the placeholder is computed from the smallest thumbnail.
    pixels: Image.Image | None = field(default=None, compare=False, repr=False)

    @property
    def label(self) -> str:
        return f"{self.box[0]}x{self.box[1]}"

    @property
    def extension(self) -> str:
        return EXTENSIONS[self.format]


class Thumbnail(BaseModel):
    """A stored thumbnail."""

    label: str  # the box, "640x480"
    bucket: str
    key: str
    width: int
    height: int
    content_type: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


class Placeholder(BaseModel):
    """What a page shows while the thumbnail loads, from the smallest thumbnail."""

    thumbhash: str  # base64, as ThumbHash's reference decoders take it
    dominant_color: str  # "#rrggbb"


class Fingerprint(BaseModel):
    """What finds the image's duplicates: a perceptual hash and a digest of its pixels."""

    dhash: str  # 64-bit difference hash, 16 hex digits
    pixel_sha256: str  # SHA-256 of the decoded pixels (mode, size and bytes)
    duplicate_of: str | None = None  # an earlier image with the very same pixels


class Labels(BaseModel):
    """What the labels step produced: labels, or why there are none."""

    status: str  # "COMPLETED", "SKIPPED" or "FAILED"
    # [{"Name": str, "Confidence": float}], plus "Parents": [{"Name": str}] from `local`
    labels: list[dict[str, Any]] = []
    # "s3" or "thumbnail" (Rekognition's input), "local", or "duplicate" (from duplicate_of)
    source: str | None = None
    error: str | None = None  # the Rekognition error (a sentence naming its code), never swallowed
    reason: str | None = None  # why labelling was skipped


# Moderation verdicts whose thumbnails are held back under `quarantine/`: flagged, or a
# check that could not be made (moderation fails closed).
QUARANTINED = frozenset({"FLAGGED", "FAILED"})


class Moderation(BaseModel):
    """What the moderation step found: a verdict, or why there is none."""

    status: str  # "CLEAN", "FLAGGED", "SKIPPED" (off) or "FAILED"
    # [{"Name", "Confidence", "ParentName", "TaxonomyLevel"}], as Rekognition names them
    labels: list[dict[str, Any]] = []
    source: str | None = None  # "s3" or "pixels"
    error: str | None = None  # the Rekognition error (a sentence naming its code)
    reason: str | None = None  # why moderation was skipped

    @property
    def quarantined(self) -> bool:
        return self.status in QUARANTINED


@dataclass(frozen=True)
class ImageWork:
    """One image on its way through the steps: what each step has produced so far.

    Each step takes it and returns a copy with its own product added (`having`). `item` is
    the final record: set by the last step, or by the claim when this version is already done.
    """

    source: SourceObject
    run_id: str
    force: bool = False  # redo a version already COMPLETED (a backfill after a size change)
    image: DecodedImage | None = None
    thumbnails: tuple[Thumbnail, ...] = ()
    placeholder: Placeholder | None = None
    fingerprint: Fingerprint | None = None
    metadata: dict[str, Any] | None = None
    labels: Labels | None = None
    moderation: Moderation | None = None
    item: dict[str, Any] | None = None

    def having(self, **products: Any) -> ImageWork:
        return replace(self, **products)
