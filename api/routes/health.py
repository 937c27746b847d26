"""Liveness (the process answers) and readiness (the table answers)."""

from __future__ import annotations

import logging

from botocore.exceptions import BotoCoreError, ClientError
from fastapi import APIRouter, status

from api.deps import SettingsDep
from api.errors import ApiError
from api.models import UNAVAILABLE, Status
from image_pipeline.aws import client, error_code

logger = logging.getLogger(__name__)

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> Status:
    return Status(status="ok")


@router.get("/readyz", responses=UNAVAILABLE)
def readyz(settings: SettingsDep) -> Status:
    try:
        client("dynamodb").describe_table(TableName=settings.table_name)
    except (BotoCoreError, ClientError) as exc:
        logger.warning("Not ready: %s", error_code(exc) or type(exc).__name__)
        message = f"DynamoDB table {settings.table_name!r} is not reachable."
        raise ApiError(status.HTTP_503_SERVICE_UNAVAILABLE, message) from exc
    return Status(status="ok")
