"""Response bodies of the API, kept apart from the stored items so the OpenAPI is exact."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ProcessingStatus = Literal["PROCESSING", "COMPLETED", "FAILED"]

# Stored as text (`datetime.isoformat()`) and passed on as stored, never re-formatted.
IsoTimestamp = Annotated[str, Field(json_schema_extra={"format": "date-time"})]


class Message(BaseModel):
    """The body of every error response."""

    message: str


class ValidationMessage(Message):
    detail: list[dict[str, Any]] = Field(description="What pydantic found wrong, field by field.")


class Status(BaseModel):
    status: str = Field(examples=["ok"])


class WebhookResult(BaseModel):
    message: str = Field(examples=["accepted"])
    accepted: bool = Field(description="False when the event is not for this pipeline.")
    event_id: str | None = Field(
        None,
        description="Id of the Prefect event that carried the upload with the others of its "
        "batch; the same set of uploads always gets the same id.",
    )
    image_event_id: str | None = Field(
        None,
        description="The upload's own id (its `event_id` in the event's `images`); the same "
        "upload always gets the same id.",
    )


# --- Image records -----------------------------------------------------------------------
# The known attributes are typed so that /openapi.json documents them; `extra="allow"`
# passes on any other attribute (older writers, fields added later) instead of hiding it.


class LabelParent(BaseModel):
    model_config = ConfigDict(extra="allow")

    Name: str


class Label(BaseModel):
    model_config = ConfigDict(extra="allow")

    Name: str
    Confidence: float = Field(description="Percent, 0 to 100.")
    Parents: list[LabelParent] | None = Field(
        None,
        description="More general labels it belongs to, as Rekognition names them "
        "(`local` labels: from WordNet; Tabby has Cat, Feline, Mammal, Animal).",
    )


class ModerationLabel(BaseModel):
    model_config = ConfigDict(extra="allow")

    Name: str = Field(examples=["Explicit Nudity"])
    Confidence: float = Field(description="Percent, 0 to 100.")
    ParentName: str = Field("", description="The label above it in Rekognition's taxonomy.")
    TaxonomyLevel: int | None = Field(None, description="1 (top) to 3.")


class ExtractedMetadata(BaseModel):
    """The original pipeline's Pillow properties, plus animation, EXIF and labels."""

    model_config = ConfigDict(extra="allow")

    filename: str | None = None
    filesize_bytes: int | None = None
    format: str | None = Field(None, examples=["JPEG"])
    width_pixels: int | None = None
    height_pixels: int | None = None
    display_width: int | None = Field(
        None, description="Width as shown, after EXIF orientation (`width_pixels` is as stored)."
    )
    display_height: int | None = Field(
        None, description="Height as shown, after EXIF orientation (`height_pixels` is as stored)."
    )
    mode: str | None = Field(None, examples=["RGB"])
    is_animated: bool | None = None
    frame_count: int | None = None
    exif: dict[str, Any] | None = Field(
        None, description="Camera, date taken, orientation; GPS only when opted in."
    )
    rekognition_labels: list[Label] | None = None


class ImageRecord(BaseModel):
    """An image's DynamoDB item. Attributes the item does not have are left out, not null."""

    model_config = ConfigDict(extra="allow")

    ImageKey: str = Field(description="The S3 key, exactly as S3 reports it.")
    s3_bucket_original: str | None = None
    s3_key_original: str | None = None
    overall_processing_status: ProcessingStatus | None = None
    image_type: str | None = Field(None, examples=["jpeg"])
    # Free text: the original pipeline's items may carry values of their own here.
    validation_status: str | None = Field(None, examples=["VALID", "INVALID"])
    thumbnails: dict[str, str] | None = Field(
        None, description="Box (`640x480`) to the thumbnail's S3 URI."
    )
    thumbnail_generation_status: str | None = None
    extracted_metadata: ExtractedMetadata | None = None
    metadata_extraction_status: str | None = None
    labels_status: Literal["COMPLETED", "SKIPPED", "FAILED"] | None = None
    labels_source: str | None = Field(
        None, description="`s3` or `thumbnail` (Rekognition's input), or `local`."
    )
    rekognition_error: str | None = Field(
        None, description="Why labelling failed: a sentence naming Rekognition's error code."
    )
    labels_skipped_reason: str | None = None
    thumbhash: str | None = Field(
        None,
        description="ThumbHash of the smallest thumbnail, base64: a placeholder a page decodes "
        "into a blurred preview while the thumbnail loads.",
    )
    dominant_color: str | None = Field(
        None, examples=["#4a6b8c"], description="The commonest colour of the smallest thumbnail."
    )
    dhash: str | None = Field(
        None,
        examples=["58b4e68686e6b458"],
        description="64-bit perceptual difference hash (dHash), 16 hex digits; near-duplicates "
        "differ in few bits (`GET /images/{key}/similar`).",
    )
    pixel_sha256: str | None = Field(None, description="SHA-256 of the decoded pixels.")
    duplicate_of: str | None = Field(
        None, description="The key of an earlier image with exactly the same pixels."
    )
    moderation_status: Literal["CLEAN", "FLAGGED", "SKIPPED", "FAILED"] | None = Field(
        None,
        description="Rekognition moderation: FLAGGED when a label reaches the flag threshold; "
        "FLAGGED and FAILED images have their thumbnails under `quarantine/`.",
    )
    moderation_labels: list[ModerationLabel] | None = None
    moderation_source: str | None = Field(None, description="`s3` or `pixels`.")
    moderation_error: str | None = Field(
        None, description="Why moderation failed: a sentence naming Rekognition's error code."
    )
    moderation_skipped_reason: str | None = None
    error_type: str | None = Field(None, examples=["NotAnImage"])
    error_message: str | None = Field(
        None,
        description="Why it failed: the pipeline's own reason for a rejected image, otherwise "
        "a sentence chosen by `error_type`; the details are in the flow run's log in Prefect.",
    )
    failed_step: str | None = Field(None, examples=["validate"])
    etag: str | None = Field(None, description="ETag of the object version the item describes.")
    source_last_modified: float | None = Field(None, description="That version's epoch seconds.")
    attempts: int | None = Field(None, description="Runs that have claimed the image.")
    flow_run_id: str | None = Field(None, description="The Prefect flow run that wrote it last.")
    created_at: int | None = Field(None, description="Epoch seconds; kept across re-uploads.")
    updated_at: int | None = Field(None, description="Epoch seconds.")
    created_at_iso: IsoTimestamp | None = Field(None, description="`created_at`, ISO 8601.")
    updated_at_iso: IsoTimestamp | None = Field(None, description="`updated_at`, ISO 8601.")


class ImagePage(BaseModel):
    """One page of images with the same status, most recently updated first."""

    items: list[ImageRecord]
    next_cursor: str | None = Field(
        description="Pass it back as `cursor` for the next page; null on the last page."
    )


class SimilarImage(BaseModel):
    ImageKey: str
    distance: int = Field(description="Bits in which the dHashes differ, 0 to 64.")
    dhash: str


class SimilarImages(BaseModel):
    """The images within `max_distance` of an image's dHash, nearest first."""

    ImageKey: str
    dhash: str
    max_distance: int
    items: list[SimilarImage]
    complete: bool = Field(
        description="False when the search stopped at its bound on candidates read (many "
        "images share a band, e.g. blank ones): `items` may then miss some."
    )


class ReprocessStarted(BaseModel):
    flow_run_id: str = Field(description="The process-image flow run just created.")
    ui_url: str | None = Field(description="That run in the Prefect UI.")
    bucket: str
    key: str
    etag: str = Field(description="The object version the run will process.")


class RunInProgress(Message):
    flow_run_id: str = Field(description="The process-image run that is handling the image.")
    flow_run_state: str = Field(examples=["Running"])
    ui_url: str | None


# OpenAPI entries for the error responses that routes share.
BAD_REQUEST: dict[int | str, dict[str, Any]] = {400: {"model": Message}}
UNAUTHORIZED: dict[int | str, dict[str, Any]] = {401: {"model": Message}}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": Message}}
UNAVAILABLE: dict[int | str, dict[str, Any]] = {503: {"model": Message}}
INVALID: dict[int | str, dict[str, Any]] = {422: {"model": ValidationMessage}}
