"""`POST /events/s3`: the EventBridge API destination's target; starts runs through Prefect."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Response, status
from pydantic import ValidationError

from api.deps import Prefect, SettingsDep, WebhookBody
from api.errors import ApiError
from api.events import (
    EXAMPLE_EVENT,
    OBJECT_CREATED,
    ObjectCreatedEvent,
    S3Event,
    ignore_reason,
    parse,
    prefect_event,
)
from api.models import INVALID, UNAVAILABLE, Message, WebhookResult
from api.prefect_events import PrefectUnavailable

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
def receive_s3_event(
    body: WebhookBody, settings: SettingsDep, prefect: Prefect, response: Response
) -> WebhookResult:
    """Turn an S3 "Object Created" event from EventBridge into one Prefect event."""
    event = _parse(body)
    if not isinstance(event, ObjectCreatedEvent):
        reason = f"ignored: detail-type {event.detail_type!r} is not {OBJECT_CREATED!r}"
        return _ignored(response, reason)
    if reason := ignore_reason(event, settings.uploads_bucket, settings.uploads_prefix):
        return _ignored(response, reason)
    prefect_evt = prefect_event(event)
    try:
        prefect.emit(prefect_evt)
    except PrefectUnavailable as exc:
        logger.warning("Prefect did not take event %s: %s", prefect_evt["id"], exc)
        # A 5xx makes EventBridge retry; the event id keeps the retry from running twice.
        raise ApiError(status.HTTP_503_SERVICE_UNAVAILABLE, PREFECT_UNAVAILABLE) from exc
    return WebhookResult(message="accepted", accepted=True, event_id=prefect_evt["id"])


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
