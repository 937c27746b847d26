"""Images by lifecycle status, newest first, read through the table's status index.

`list_by_status` is one page of a listing, with an opaque cursor for the next page; the
status API and the rerun flow share it. The time window is part of the index query; the
key prefix and the error type are filters, which DynamoDB applies after it has read (and
counted against `Limit`) the items, so a page keeps querying until it has `limit`
matching items and knows whether one more exists, or the index has no more.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from image_pipeline.aws import client
from image_pipeline.records import from_dynamo
from image_pipeline.settings import get_settings

# The global secondary index of deployments/aws/template.yaml: hash overall_processing_status,
# range updated_at (epoch seconds), all attributes projected.
STATUS_INDEX = "status-updated_at-index"
# The attributes that place an item in the index: its hash and range key, then the table key.
_POSITION = ("overall_processing_status", "updated_at", "ImageKey")
_POSITION_TYPES = {"overall_processing_status": "S", "updated_at": "N", "ImageKey": "S"}
# With a filter, read at least this many index entries per query, so that a page of rare
# matches does not cost one round trip per entry read.
_MIN_FILTERED_READ = 100
MAX_CURSOR_CHARS = 4096  # a position holds a key of at most 1024 bytes
_FIND_PAGE = 200


def epoch_seconds(moment: datetime | None) -> int | None:
    """Whole epoch seconds, as the item's updated_at; a time without zone is UTC."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return math.floor(moment.timestamp())


class Page(BaseModel):
    """One page of a listing: the items, newest first, and where the next page starts."""

    items: list[dict[str, Any]]
    next_cursor: str | None = Field(
        description="Pass it back as `cursor` for the next page; null when there is none."
    )


def list_by_status(
    status: str,
    *,
    limit: int,
    cursor: str | None = None,
    key_prefix: str | None = None,
    error_type: str | None = None,
    updated_after: int | None = None,
    updated_before: int | None = None,
) -> Page:
    """Up to `limit` items whose `overall_processing_status` is `status`, newest first.

    `updated_after` and `updated_before` are epoch seconds, both inclusive. `cursor` is a
    `next_cursor` of an earlier page of the same status; a malformed one, or one outside
    the time window, raises `ValueError` (an API answers 400).
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    start = decode_cursor(cursor, status) if cursor else None
    query = _query(status, key_prefix, error_type, updated_after, updated_before)
    if query is None:  # an empty time window
        return Page(items=[], next_cursor=None)
    if start is not None:
        _check_in_window(start, updated_after, updated_before)
    dynamodb = client("dynamodb")
    query["TableName"] = get_settings().table_name
    filtered = "FilterExpression" in query

    # One item more than the page, so that the last page is known to be the last.
    found: list[dict[str, Any]] = []
    while len(found) <= limit:
        wanted = limit + 1 - len(found)
        request = query | {"Limit": max(wanted, _MIN_FILTERED_READ) if filtered else wanted}
        if start is not None:
            request["ExclusiveStartKey"] = start
        response = dynamodb.query(**request)
        found += response.get("Items", [])
        start = response.get("LastEvaluatedKey")
        if start is None:
            break
    page = found[:limit]
    # The next page starts right after the last item of this one.
    next_cursor = encode_cursor(page[-1]) if len(found) > limit else None
    return Page(items=[from_dynamo(item) for item in page], next_cursor=next_cursor)


def _query(
    status: str,
    key_prefix: str | None,
    error_type: str | None,
    updated_after: int | None,
    updated_before: int | None,
) -> dict[str, Any] | None:
    """The Query request without table, limit and start; None when the window is empty."""
    names = {"#status": "overall_processing_status"}
    values: dict[str, Any] = {":status": {"S": status}}
    condition = "#status = :status"
    if updated_after is not None or updated_before is not None:
        names["#updated"] = "updated_at"
        if updated_after is not None and updated_before is not None:
            if updated_after > updated_before:
                return None
            condition += " AND #updated BETWEEN :after AND :before"
        elif updated_after is not None:
            condition += " AND #updated >= :after"
        else:
            condition += " AND #updated <= :before"
        if updated_after is not None:
            values[":after"] = {"N": str(int(updated_after))}
        if updated_before is not None:
            values[":before"] = {"N": str(int(updated_before))}
    filters = []
    if key_prefix:
        names["#key"] = "ImageKey"
        values[":prefix"] = {"S": key_prefix}
        filters.append("begins_with(#key, :prefix)")
    if error_type:
        names["#error"] = "error_type"
        values[":error"] = {"S": error_type}
        filters.append("#error = :error")
    query: dict[str, Any] = {
        "IndexName": STATUS_INDEX,
        "KeyConditionExpression": condition,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
        "ScanIndexForward": False,  # newest first
    }
    if filters:
        query["FilterExpression"] = " AND ".join(filters)
    return query


# --- The cursor: an item's position in the index, opaque to clients -----------------------


def encode_cursor(item: dict[str, Any]) -> str:
    """The cursor that resumes after `item` (a raw DynamoDB item or its position)."""
    position = {name: item[name] for name in _POSITION}
    text = json.dumps(position, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, status: str) -> dict[str, Any]:
    """The position `cursor` names, checked; `ValueError` when it is not one of ours."""
    invalid = ValueError("cursor is not valid: pass back a next_cursor of this listing unchanged")
    if len(cursor) > MAX_CURSOR_CHARS:
        raise invalid
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
        position = json.loads(raw)
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise invalid from exc
    if not isinstance(position, dict) or set(position) != set(_POSITION):
        raise invalid
    for name, kind in _POSITION_TYPES.items():
        value = position[name]
        if not (isinstance(value, dict) and set(value) == {kind} and isinstance(value[kind], str)):
            raise invalid
    if not position["updated_at"]["N"].isdigit() or not position["ImageKey"]["S"]:
        raise invalid
    if position["overall_processing_status"]["S"] != status:
        raise ValueError(f"cursor belongs to a listing of another status than {status!r}")
    return position


def _check_in_window(position: dict[str, Any], after: int | None, before: int | None) -> None:
    updated = int(position["updated_at"]["N"])
    if (after is not None and updated < after) or (before is not None and updated > before):
        raise ValueError("cursor lies outside the requested updated_after/updated_before window")


def find_images(
    status: str,
    *,
    limit: int,
    key_prefix: str | None = None,
    error_type: str | None = None,
    updated_after: int | None = None,
    updated_before: int | None = None,
) -> Page:
    """Every matching item up to `limit`, newest first; `next_cursor` is set when more match."""
    items: list[dict[str, Any]] = []
    cursor = None
    while len(items) < limit:
        page = list_by_status(
            status,
            limit=min(limit - len(items), _FIND_PAGE),
            cursor=cursor,
            key_prefix=key_prefix,
            error_type=error_type,
            updated_after=updated_after,
            updated_before=updated_before,
        )
        items += page.items
        cursor = page.next_cursor
        if cursor is None:
            break
    return Page(items=items, next_cursor=cursor)
