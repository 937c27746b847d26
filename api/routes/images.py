"""Image records by S3 key, read from DynamoDB exactly as stored."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status

from api.deps import DynamoDB, SettingsDep
from api.errors import ApiError
from api.models import NOT_FOUND, UNAVAILABLE
from tasks.record import from_dynamo

router = APIRouter(prefix="/images", tags=["images"])

NOT_FOUND_MESSAGE = "Image details not found for the given image identifier."
MAX_KEY_BYTES = 1024  # S3's limit: a longer key cannot name an image
RESPONSES = {**NOT_FOUND, **UNAVAILABLE}

Item = dict[str, Any]


@router.get("/uploads/{filename}/status", responses=RESPONSES)
def get_upload_status(filename: str, dynamodb: DynamoDB, settings: SettingsDep) -> Item:
    """The original API's route: the item of `uploads/{filename}`."""
    return read_image(dynamodb, settings.table_name, f"uploads/{filename}")


# `{key:path}` takes slashes; the client percent-encodes the key and Starlette decodes the
# path once. A key that itself ends in `/status` is asked for as `/images/{key}/status`.
@router.get("/{key:path}/status", responses=RESPONSES)
def get_image_status(key: str, dynamodb: DynamoDB, settings: SettingsDep) -> Item:
    """The item of any S3 key."""
    return read_image(dynamodb, settings.table_name, key)


@router.get("/{key:path}", responses=RESPONSES)
def get_image(key: str, dynamodb: DynamoDB, settings: SettingsDep) -> Item:
    """The item of any S3 key."""
    return read_image(dynamodb, settings.table_name, key)


def read_image(dynamodb: Any, table: str, key: str) -> Item:
    # DynamoDB refuses empty and over-long keys with an error; no image can have them.
    if not key or len(key.encode()) > MAX_KEY_BYTES:
        raise ApiError(status.HTTP_404_NOT_FOUND, NOT_FOUND_MESSAGE)
    response = dynamodb.get_item(TableName=table, Key={"ImageKey": {"S": key}}, ConsistentRead=True)
    if "Item" not in response:
        raise ApiError(status.HTTP_404_NOT_FOUND, NOT_FOUND_MESSAGE)
    return from_dynamo(response["Item"])
