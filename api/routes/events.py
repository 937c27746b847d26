"""`POST /events/s3`: the EventBridge API destination's target; starts runs through Prefect."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Future

from fastapi import APIRouter, Response, status
from pydantic import ValidationError

from api.deps import Batching, Prefect, SettingsDep, WebhookBody
from api.errors import ApiError
from api.events import (
    EXAMPLE_EVENT,
    OBJECT_CREATED,
    ObjectCreatedEvent,
    S3Event,
    ignore_reason,
    image,
    parse,
)
from api.models import INVALID, UNAVAILABLE, Message, WebhookResult
from api.prefect_events import ANSWER_SECONDS, PrefectUnavailable

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/events", tags=["events"])

PREFECT_UNAVAILABLE = "Prefect is unavailable; EventBridge will retry."

# The body is read raw (the size limit comes first), so FastAPI cannot document it itself.
REQUEST_BODY = {
    "required": True,
    "content": {"application/json": {"schema": {"type": "object"}, "example": EXAMPLE_EVENT}},
}


@router.post(
    "/s3",
    status_code=status.HTTP_202_ACCEPTED,
    response_model_exclude_none=True,
    responses={
        200: {"model": WebhookResult, "description": "Not for this pipeline: acknowledged."},
        401: {"model": Message},
        413: {"model": Message},
        **INVALID,
        **UNAVAILABLE,
    },
    openapi_extra={"requestBody": REQUEST_BODY},
)
async def receive_s3_event(
    body: WebhookBody,
    settings: SettingsDep,
    prefect: Prefect,
    batcher: Batching,
    response: Response,
) -> WebhookResult:
    """Add an S3 "Object Created" event from EventBridge to the batch of uploads that goes to
    Prefect as one event; answer once Prefect has taken that event."""
    event = _parse(body)
    if not isinstance(event, ObjectCreatedEvent):
        reason = f"ignored: detail-type {event.detail_type!r} is not {OBJECT_CREATED!r}"
        return _ignored(response, reason)
    if reason := ignore_reason(event, settings.uploads_bucket, settings.uploads_prefix):
        return _ignored(response, reason)
    upload = image(event)
    window = settings.batch_window_seconds
    quiet = settings.batch_quiet_seconds
    sent = batcher.add(upload, prefect.emit, window, settings.batch_max_images, quiet)
    batch_id = await _wait_for(sent, window + ANSWER_SECONDS, upload["event_id"])
    return WebhookResult(
        message="accepted", accepted=True, event_id=batch_id, image_event_id=upload["event_id"]
    )


async def _wait_for(sent: Future[str], timeout: float, image_id: str) -> str:
    """The batch event's id once Prefect took it; 503 when it did not, or not in time: a
    5xx makes EventBridge retry the delivery, so no upload is lost."""
    try:
        # Shielded: a request that gives up must not cancel the batch others wait on.
        return await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(sent)), timeout)
    except PrefectUnavailable as exc:  # the batcher logged it, once for the whole batch
        raise ApiError(status.HTTP_503_SERVICE_UNAVAILABLE, PREFECT_UNAVAILABLE) from exc
    except TimeoutError as exc:
        logger.warning("No answer from Prefect in %.1f s for upload %s", timeout, image_id)
        raise ApiError(status.HTTP_503_SERVICE_UNAVAILABLE, PREFECT_UNAVAILABLE) from exc


def _parse(body: bytes) -> S3Event:
    try:
        return parse(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        if any(error["type"] == "json_invalid" for error in errors):
            message = "The body is not valid JSON."
        else:
            message = 'The body is not an EventBridge S3 "Object Created" event.'
        raise ApiError(status.HTTP_422_UNPROCESSABLE_CONTENT, message, detail=errors) from exc


def _ignored(response: Response, reason: str) -> WebhookResult:
    # 200, not 4xx: EventBridge must not retry an event we chose to skip.
    response.status_code = status.HTTP_200_OK
    return WebhookResult(message=reason, accepted=False)
