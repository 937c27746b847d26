"""Listing images by status through the table's index, on MiniStack.

Each test writes its items under a status of its own, so that it sees exactly its items
however many other tests share the table.
"""

from __future__ import annotations

import base64
import json
import random
import uuid
from typing import Any

import pytest

from deployments.local import template
from image_pipeline import catalog
from image_pipeline.aws import client
from image_pipeline.catalog import decode_cursor, encode_cursor, find_images, list_by_status
from image_pipeline.records import to_dynamo
from image_pipeline.settings import get_settings

NOW = 1_700_000_000


@pytest.fixture
def status(aws_stack: str) -> str:
    return f"TEST-{uuid.uuid4().hex[:12]}"


def put(status: str, key: str, updated_at: int, **attributes: Any) -> None:
    item = {
        "ImageKey": key,
        "s3_bucket_original": get_settings().uploads_bucket,
        "s3_key_original": key,
        "overall_processing_status": status,
        "updated_at": updated_at,
        "created_at": updated_at - 60,
        **attributes,
    }
    client("dynamodb").put_item(
        TableName=get_settings().table_name,
        Item={name: to_dynamo(value) for name, value in item.items()},
    )


def keys(page: catalog.Page) -> list[str]:
    return [item["ImageKey"] for item in page.items]


def every_page(status: str, *, limit: int, **filters: Any) -> list[list[str]]:
    pages, cursor = [], None
    while True:
        page = list_by_status(status, limit=limit, cursor=cursor, **filters)
        pages.append(keys(page))
        assert len(page.items) <= limit
        cursor = page.next_cursor
        if cursor is None:
            return pages
        assert len(pages) < 100, "the cursor does not advance"


@pytest.fixture
def seven(status: str) -> list[str]:
    """Seven items, two of them updated in the same second; newest first."""
    base = f"uploads/{uuid.uuid4().hex[:8]}"
    times = [NOW + 60, NOW + 50, NOW + 40, NOW + 40, NOW + 30, NOW + 20, NOW + 10]
    entries = [(f"{base}/{i}.jpg", t) for i, t in enumerate(times)]
    for key, updated_at in random.sample(entries, len(entries)):
        put(status, key, updated_at)
    listed = keys(list_by_status(status, limit=100))
    # Within one second the order is the index's own; across seconds, newest first.
    assert sorted(listed[2:4]) == [entries[2][0], entries[3][0]]
    return listed


def test_newest_first_and_nothing_else(status: str, seven: list[str]) -> None:
    put(f"{status}-OTHER", f"uploads/{uuid.uuid4().hex[:8]}/other.jpg", NOW + 100)
    page = list_by_status(status, limit=100)
    assert [item["updated_at"] for item in page.items] == sorted(
        (item["updated_at"] for item in page.items), reverse=True
    )
    assert len(page.items) == 7
    assert page.next_cursor is None


def test_pages_of_two_cover_every_item_exactly_once(status: str, seven: list[str]) -> None:
    pages = every_page(status, limit=2)
    assert [len(page) for page in pages] == [2, 2, 2, 1]
    assert [key for page in pages for key in page] == seven


def test_last_full_page_says_when_the_index_is_exhausted(status: str, seven: list[str]) -> None:
    first = list_by_status(status, limit=6)
    last = list_by_status(status, limit=1, cursor=first.next_cursor)
    assert keys(last) == seven[6:]
    assert last.next_cursor is None


def test_items_are_plain_values(status: str) -> None:
    key = f"uploads/{uuid.uuid4().hex[:8]}/a.jpg"
    put(status, key, NOW, thumbnails={"100x100": "s3://t/a.jpg"}, attempts=2, ratio=1.5)
    [item] = list_by_status(status, limit=5).items
    assert item["updated_at"] == NOW and type(item["updated_at"]) is int
    assert item["attempts"] == 2 and item["ratio"] == 1.5
    assert item["thumbnails"] == {"100x100": "s3://t/a.jpg"}


@pytest.fixture
def mixed(status: str) -> dict[str, list[str]]:
    """Twelve items under two prefixes and two error types, interleaved in time."""
    base = uuid.uuid4().hex[:8]
    expected: dict[str, list[str]] = {"a": [], "b": [], "a+Corrupt": [], "Corrupt": []}
    for i in range(12):
        folder = "a" if i % 3 == 0 else "b"
        error = "CorruptImage" if i % 2 == 0 else "NotAnImage"
        key = f"uploads/{base}/{folder}/{i:02}.jpg"
        put(status, key, NOW + 1000 - i, error_type=error)
        expected[folder].append(key)
        if error == "CorruptImage":
            expected["Corrupt"].append(key)
            if folder == "a":
                expected["a+Corrupt"].append(key)
    expected["prefix"] = [f"uploads/{base}/"]
    return expected


def test_key_prefix_filter_across_pages(status: str, mixed: dict[str, list[str]]) -> None:
    prefix = mixed["prefix"][0]
    pages = every_page(status, limit=1, key_prefix=f"{prefix}a/")
    assert [key for page in pages for key in page] == mixed["a"]
    # Limit counts the entries DynamoDB reads, before the filter: each page still fills up.
    assert all(len(page) == 1 for page in pages)
    assert len(pages) == len(mixed["a"])


def test_error_type_filter(status: str, mixed: dict[str, list[str]]) -> None:
    page = list_by_status(status, limit=100, error_type="CorruptImage")
    assert keys(page) == mixed["Corrupt"]
    assert list_by_status(status, limit=100, error_type="Nope").items == []


def test_filters_combine(status: str, mixed: dict[str, list[str]]) -> None:
    pages = every_page(
        status, limit=1, key_prefix=f"{mixed['prefix'][0]}a/", error_type="CorruptImage"
    )
    assert [key for page in pages for key in page] == mixed["a+Corrupt"]


def test_filtered_page_stops_at_the_limit(status: str, mixed: dict[str, list[str]]) -> None:
    # One query reads past the limit; the cursor still resumes right after the last item.
    first = list_by_status(status, limit=2, key_prefix=mixed["prefix"][0] + "b/")
    second = list_by_status(
        status, limit=100, key_prefix=mixed["prefix"][0] + "b/", cursor=first.next_cursor
    )
    assert keys(first) + keys(second) == mixed["b"]
    assert second.next_cursor is None


def test_time_window_is_inclusive(status: str, seven: list[str]) -> None:
    # updated_at: 60, 50, 40, 40, 30, 20, 10 seconds after NOW
    assert keys(list_by_status(status, limit=10, updated_after=NOW + 40)) == seven[:4]
    assert keys(list_by_status(status, limit=10, updated_before=NOW + 30)) == seven[4:]
    window = every_page(status, limit=1, updated_after=NOW + 30, updated_before=NOW + 50)
    assert [key for page in window for key in page] == seven[1:5]
    assert list_by_status(status, limit=10, updated_after=NOW + 50, updated_before=NOW).items == []


def test_cursor_outside_the_window_is_refused(status: str, seven: list[str]) -> None:
    cursor = list_by_status(status, limit=5).next_cursor  # after the item at NOW + 30
    with pytest.raises(ValueError, match="outside"):
        list_by_status(status, limit=5, cursor=cursor, updated_after=NOW + 40)


def test_find_images_pages_through_everything(
    status: str, seven: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(catalog, "_FIND_PAGE", 3)
    everything = find_images(status, limit=100)
    assert keys(everything) == seven and everything.next_cursor is None
    some = find_images(status, limit=5)
    assert keys(some) == seven[:5]
    assert keys(list_by_status(status, limit=10, cursor=some.next_cursor)) == seven[5:]


# --- cursors, without AWS --------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


POSITION = {
    "overall_processing_status": {"S": "FAILED"},
    "updated_at": {"N": "1700000000"},
    "ImageKey": {"S": "uploads/caf\u00e9 a+b%2F.jpg"},
}

BAD_CURSORS = {
    "not base64": "not base64!",
    "stray character": _b64(json.dumps(POSITION).encode()) + "*",
    "not JSON": _b64(b"\xff\xfe{"),
    "a list": _b64(b"[1, 2]"),
    "missing key": _b64(json.dumps({**POSITION, "ImageKey": None}).encode()),
    "extra key": _b64(json.dumps({**POSITION, "x": {"S": "y"}}).encode()),
    "wrong type": _b64(json.dumps({**POSITION, "updated_at": {"S": "1"}}).encode()),
    "not a number": _b64(json.dumps({**POSITION, "updated_at": {"N": "1e3"}}).encode()),
    "empty key": _b64(json.dumps({**POSITION, "ImageKey": {"S": ""}}).encode()),
    "too long": "A" * (catalog.MAX_CURSOR_CHARS + 4),
    "empty": "=",
}


def test_cursor_round_trips_and_is_url_safe() -> None:
    cursor = encode_cursor(POSITION | {"error_type": {"S": "ignored"}})
    assert cursor.isascii() and not set(cursor) & set("+/=")
    assert decode_cursor(cursor, "FAILED") == POSITION


@pytest.mark.parametrize("cursor", BAD_CURSORS.values(), ids=BAD_CURSORS.keys())
def test_malformed_cursor_is_a_value_error(cursor: str) -> None:
    with pytest.raises(ValueError, match="cursor is not valid"):
        list_by_status("FAILED", limit=1, cursor=cursor)


def test_cursor_of_another_status_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="another status"):
        list_by_status("COMPLETED", limit=1, cursor=encode_cursor(POSITION))


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="limit"):
        list_by_status("FAILED", limit=0)


def test_index_name_is_the_templates() -> None:
    table = template.resources_of(template.load_template(), ["AWS::DynamoDB::Table"])
    indexes = next(iter(table.values()))["Properties"]["GlobalSecondaryIndexes"]
    [index] = [i for i in indexes if i["IndexName"] == catalog.STATUS_INDEX]
    assert [k["AttributeName"] for k in index["KeySchema"]] == [
        "overall_processing_status",
        "updated_at",
    ]
