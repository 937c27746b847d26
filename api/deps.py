"""What routes need, as `Annotated` aliases. Everything is looked up per request, so that
settings changes (and tests' `configure()`) apply without rebuilding the app."""

from __future__ import annotations

import hmac
import logging
from typing import Annotated

from fastapi import Depends, Request, Security, status
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from prefect.settings import get_current_settings
from pydantic import SecretStr

from api.batching import Batcher
from api.errors import ApiError
from api.prefect_events import PrefectEvents
from image_pipeline.settings import Settings, get_settings

logger = logging.getLogger(__name__)

SettingsDep = Annotated[Settings, Depends(get_settings)]


def prefect_events(request: Request) -> PrefectEvents:
    # Prefect's settings, not ours: the profile or PREFECT_API_URL/PREFECT_API_KEY.
    api = get_current_settings().api
    key = api.key.get_secret_value() if api.key else None
    return PrefectEvents(request.app.state.http, api.url, key)


Prefect = Annotated[PrefectEvents, Depends(prefect_events)]


def batcher(request: Request) -> Batcher:
    return request.app.state.batcher


Batching = Annotated[Batcher, Depends(batcher)]

_api_key_header = APIKeyHeader(
    name="x-api-key",
    auto_error=False,
    description="IMAGE_PIPELINE_WEBHOOK_API_KEY: the EventBridge connection's key. It admits "
    "events and nothing else.",
)
_operator_bearer = HTTPBearer(
    auto_error=False,
    description="IMAGE_PIPELINE_OPERATOR_API_KEY, sent as `Authorization: Bearer <key>`: "
    "reads and lists records and starts reprocessing.",
)

WEBHOOK_REFUSED = "Missing or invalid x-api-key header."
OPERATOR_REFUSED = "Missing or invalid operator key: send Authorization: Bearer <key>."


def _matches(sent: str | None, expected: str) -> bool:
    # Bytes, because compare_digest refuses non-ASCII str; constant time against guessing.
    return bool(expected) and hmac.compare_digest((sent or "").encode(), expected.encode())


def _secret(value: SecretStr | None) -> str:
    return value.get_secret_value() if value else ""


def require_webhook_key(
    settings: SettingsDep, key: Annotated[str | None, Security(_api_key_header)]
) -> None:
    """401 unless `x-api-key` is the configured key; no key configured refuses everyone."""
    expected = _secret(settings.webhook_api_key)
    if not expected:
        logger.warning("Request refused: IMAGE_PIPELINE_WEBHOOK_API_KEY is not set.")
    if not _matches(key, expected):
        raise ApiError(status.HTTP_401_UNAUTHORIZED, WEBHOOK_REFUSED)


WebhookKey = Annotated[None, Depends(require_webhook_key)]


def require_operator_key(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_operator_bearer)],
) -> None:
    """401 unless the bearer token is the operator key; no key configured refuses everyone."""
    expected = _secret(settings.operator_api_key)
    if not expected:
        logger.warning("Request refused: IMAGE_PIPELINE_OPERATOR_API_KEY is not set.")
    elif hmac.compare_digest(expected.encode(), _secret(settings.webhook_api_key).encode()):
        # The same key for both would hand EventBridge's connection every operator power.
        logger.warning("Request refused: the operator key must differ from the webhook key.")
        expected = ""
    if not _matches(credentials.credentials if credentials else None, expected):
        raise ApiError(
            status.HTTP_401_UNAUTHORIZED, OPERATOR_REFUSED, headers={"WWW-Authenticate": "Bearer"}
        )


OperatorKey = Annotated[None, Depends(require_operator_key)]


async def webhook_body(request: Request, settings: SettingsDep, _: WebhookKey) -> bytes:
    """The raw body, read only after the key check and never beyond the size limit."""
    limit = settings.webhook_max_body_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    # Content-Length may be absent (chunked) or wrong, so count what actually arrives.
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _too_large(limit)
    return bytes(body)


def _too_large(limit: int) -> ApiError:
    return ApiError(status.HTTP_413_CONTENT_TOO_LARGE, f"The body is larger than {limit} bytes.")


WebhookBody = Annotated[bytes, Depends(webhook_body)]
