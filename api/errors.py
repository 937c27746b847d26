"""Every 4xx/5xx answer is JSON with a `message` (and `detail` for validation specifics)."""

from __future__ import annotations

import logging
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from fastapi import FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from image_pipeline.aws import error_code

logger = logging.getLogger(__name__)

UNAVAILABLE_MESSAGE = "Image records are unavailable right now; try again later."


class ApiError(HTTPException):
    """An HTTPException answered as `{"message": message, "detail": detail}`."""

    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        detail: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(status_code, message, headers)
        self.specifics = detail


def error_response(
    status_code: int, message: str, detail: Any = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    body: dict[str, Any] = {"message": message}
    if detail is not None:
        body["detail"] = jsonable_encoder(detail)
    return JSONResponse(body, status_code=status_code, headers=headers)


async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    # Framework errors (404 no route, 405) carry a plain string detail: it becomes the message.
    specifics = exc.specifics if isinstance(exc, ApiError) else None
    return error_response(exc.status_code, str(exc.detail), specifics, exc.headers)


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    return error_response(
        status.HTTP_422_UNPROCESSABLE_CONTENT, "The request is not valid.", exc.errors()
    )


async def _aws_error(request: Request, exc: BotoCoreError | ClientError) -> JSONResponse:
    # An outage of DynamoDB is the client's 503, not our 500 with a traceback.
    logger.warning(
        "DynamoDB request failed on %s: %s %s",
        request.url.path,
        error_code(exc) or type(exc).__name__,
        exc,
    )
    return error_response(status.HTTP_503_SERVICE_UNAVAILABLE, UNAVAILABLE_MESSAGE)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    # Starlette logs the traceback itself after this handler answers.
    return error_response(status.HTTP_500_INTERNAL_SERVER_ERROR, "Internal server error.")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(BotoCoreError, _aws_error)
    app.add_exception_handler(ClientError, _aws_error)
    app.add_exception_handler(Exception, _unexpected_error)
