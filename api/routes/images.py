"""Image records: one by S3 key, pages of them by status, and reprocessing on request.

Everything here needs the operator key but the original API's route, which its readers
call without one.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any

from botocore.exceptions import BotoCoreError, ClientError
from fastapi import APIRouter, Query, status
from fastapi.responses import JSONResponse

from api.deps import OperatorKey, SettingsDep
from api.errors import ApiError
from api.models import (
    BAD_REQUEST,
    INVALID,
    NOT_FOUND,
    UNAUTHORIZED,
    UNAVAILABLE,
    ImagePage,
    ImageRecord,
    Message,
    ProcessingStatus,
    ReprocessStarted,
    RunInProgress,
    SimilarImage,
    SimilarImages,
)
from api.prefect_events import PrefectUnavailable
from api.runs import RunInTheWay, start_process_image, ui_url
from image_pipeline.catalog import epoch_seconds, list_by_status
from image_pipeline.duplicates import MAX_DISTANCE, similar_to
from image_pipeline.errors import Superseded
from image_pipeline.keys import MAX_KEY_BYTES
from image_pipeline.models import SourceObject
from image_pipeline.records import read_item
from image_pipeline.settings import Settings
from image_pipeline.sources import head_source

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/images", tags=["images"])

NOT_FOUND_MESSAGE = "Image details not found for the given image identifier."
PREFECT_UNAVAILABLE = "Prefect is unavailable; try again later."
S3_UNAVAILABLE = "The uploads bucket cannot be read right now; try again later."
# Every route with parameters may answer 422; FastAPI would document its own body for it.
RESPONSES = {**NOT_FOUND, **INVALID, **UNAVAILABLE}
OPERATOR_RESPONSES = {**UNAUTHORIZED, **RESPONSES}

Item = dict[str, Any]


# --- Reading ---------------------------------------------------------------------------------


@router.get(
    "",
    response_model_exclude_unset=True,
    responses={**UNAUTHORIZED, **BAD_REQUEST, **INVALID, **UNAVAILABLE},
)
def list_images(
    _: OperatorKey,
    status: Annotated[ProcessingStatus, Query(description="The lifecycle status to list.")],
    limit: Annotated[int, Query(ge=1, le=1000, description="Items per page.")] = 50,
    cursor: Annotated[
        str | None, Query(description="`next_cursor` of the previous page, unchanged.")
    ] = None,
    key_prefix: Annotated[
        str | None, Query(max_length=MAX_KEY_BYTES, description="Only keys that start so.")
    ] = None,
    error_type: Annotated[
        str | None, Query(max_length=256, description="Only this `error_type`.")
    ] = None,
    updated_after: Annotated[
        datetime | None, Query(description="Updated at or after, to the second; UTC if no zone.")
    ] = None,
    updated_before: Annotated[
        datetime | None, Query(description="Updated at or before, to the second; UTC if no zone.")
    ] = None,
) -> ImagePage:
    """Images with this status, most recently updated first, a page at a time (operator)."""
    try:
        page = list_by_status(
            status,
            limit=limit,
            cursor=cursor,
            key_prefix=key_prefix,
            error_type=error_type,
            updated_after=epoch_seconds(updated_after),
            updated_before=epoch_seconds(updated_before),
        )
    except ValueError as exc:  # a cursor that is not one of ours, or of another listing
        raise _bad_request(str(exc)) from exc
    return ImagePage(items=page.items, next_cursor=page.next_cursor)


def _bad_request(message: str) -> ApiError:
    # Not inline: the `status` query parameter hides the module of that name in the route.
    return ApiError(status.HTTP_400_BAD_REQUEST, message)


# Exactly as stored, never re-validated: existing clients of the original API get the same
# bytes whatever the item holds. `response_model` only documents the known attributes.
@router.get("/uploads/{filename}/status", response_model=ImageRecord, responses=RESPONSES)
def get_upload_status(filename: str) -> JSONResponse:
    """The original API's route: the item of `uploads/{filename}`, exactly as stored."""
    return JSONResponse(read_image(f"uploads/{filename}"))


# `{key:path}` takes slashes; the client percent-encodes the key and Starlette decodes the
# path once. A key that itself ends in `/status` is asked for as `/images/{key}/status`.
@router.get("/{key:path}/status", response_model_exclude_unset=True, responses=OPERATOR_RESPONSES)
def get_image_status(_: OperatorKey, key: str) -> ImageRecord:
    """The item of any S3 key (operator)."""
    return ImageRecord.model_validate(read_image(key))


@router.get(
    "/{key:path}/similar",
    responses={
        **OPERATOR_RESPONSES,
        409: {"model": Message, "description": "The image has no perceptual hash yet."},
    },
)
def get_similar_images(
    _: OperatorKey,
    key: str,
    max_distance: Annotated[
        int,
        Query(
            ge=0,
            le=MAX_DISTANCE,
            description=f"Largest Hamming distance between dHashes, 0 to {MAX_DISTANCE} (the "
            "band indexes find every match up to that).",
        ),
    ] = 4,
    limit: Annotated[int, Query(ge=1, le=1000, description="Most images returned.")] = 100,
) -> SimilarImages:
    """The images whose perceptual hash is within `max_distance` bits of this one's (operator).

    Served by the table's dHash band indexes, never by a scan. Nearest first, then by key.
    """
    item = read_image(key)
    dhash = item.get("dhash")
    if not isinstance(dhash, str):
        raise ApiError(
            status.HTTP_409_CONFLICT,
            f"{key} has no perceptual hash: it is not COMPLETED, or was processed before "
            "near-duplicate search existed (reprocess it).",
        )
    found = similar_to(key, dhash, max_distance, limit)
    return SimilarImages(
        ImageKey=key,
        dhash=dhash,
        max_distance=max_distance,
        items=[
            SimilarImage(ImageKey=match.key, distance=match.distance, dhash=match.dhash)
            for match in found.items
        ],
        complete=found.complete,
    )


@router.get("/{key:path}", response_model_exclude_unset=True, responses=OPERATOR_RESPONSES)
def get_image(_: OperatorKey, key: str) -> ImageRecord:
    """The item of any S3 key (operator)."""
    return ImageRecord.model_validate(read_image(key))


def read_image(key: str) -> Item:
    item = read_item(key)
    if item is None:
        raise ApiError(status.HTTP_404_NOT_FOUND, NOT_FOUND_MESSAGE)
    return item


# --- Reprocessing ----------------------------------------------------------------------------


@router.post(
    "/{key:path}/reprocess",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ReprocessStarted,
    responses={
        **UNAUTHORIZED,
        **NOT_FOUND,
        409: {"model": RunInProgress, "description": "A process-image run is handling it."},
        **INVALID,
        **UNAVAILABLE,
    },
)
def reprocess_image(
    _: OperatorKey,
    key: str,
    settings: SettingsDep,
    force: Annotated[
        bool,
        Query(description="Redo the image even when this version is already COMPLETED."),
    ] = False,
) -> ReprocessStarted | JSONResponse:
    """Start a process-image run for the object as it is now (operator).

    The run processes the object's current version; `attempts` goes up and `created_at`
    stays. A version already COMPLETED is found done and left as it is, unless `force=true`
    (after a change of thumbnail sizes, say): then it is processed again. Refused with 409
    while a process-image run for this key is scheduled, pending, running, paused or
    cancelling.
    """
    source = current_object(settings, key)
    try:
        run = start_process_image(source, force=force)
    except RunInTheWay as exc:
        return _conflict(key, exc)
    except PrefectUnavailable as exc:
        logger.warning("Reprocess of %r: Prefect did not take the run: %s", key, exc)
        raise ApiError(status.HTTP_503_SERVICE_UNAVAILABLE, PREFECT_UNAVAILABLE) from exc
    logger.info("Reprocess of %r: started flow run %s (force=%s).", key, run.id, force)
    return ReprocessStarted(
        flow_run_id=run.id, ui_url=ui_url(run.id), bucket=source.bucket, key=key, etag=source.etag
    )


def current_object(settings: Settings, key: str) -> SourceObject:
    """The object the image's record names (or the uploads bucket's), as it is now."""
    item = read_item(key)
    if item is None and not key.startswith(settings.uploads_prefix):
        # No record and outside the prefix: the trigger would never have processed it.
        raise ApiError(status.HTTP_404_NOT_FOUND, NOT_FOUND_MESSAGE)
    bucket = (item or {}).get("s3_bucket_original") or settings.uploads_bucket
    try:
        return head_source(bucket, key, None)
    except Superseded as exc:
        message = f"s3://{bucket}/{key} does not exist: there is nothing to reprocess."
        raise ApiError(status.HTTP_404_NOT_FOUND, message) from exc
    except (BotoCoreError, ClientError) as exc:
        logger.warning("Reprocess of %r: cannot read s3://%s: %s", key, bucket, exc)
        raise ApiError(status.HTTP_503_SERVICE_UNAVAILABLE, S3_UNAVAILABLE) from exc


def _conflict(key: str, exc: RunInTheWay) -> JSONResponse:
    run = exc.run
    body = RunInProgress(
        message=f"{key} is already being processed by flow run {run.id} ({run.state}).",
        flow_run_id=run.id,
        flow_run_state=run.state,
        ui_url=ui_url(run.id),
    )
    return JSONResponse(body.model_dump(), status_code=status.HTTP_409_CONFLICT)
