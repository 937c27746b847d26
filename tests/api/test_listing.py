"""`GET /images?status=...`: pages of images by status, over real HTTP against MiniStack."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.api.test_images import put_item

# Far in the future, so that these items come before any other test's in the index.
FUTURE = 4_000_000_000


@pytest.fixture
def prefix() -> str:
    return f"uploads/list-{uuid.uuid4().hex[:8]}/"


def iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def put_failed(key: str, updated_at: int, **attributes: Any) -> dict[str, Any]:
    failure = {
        "overall_processing_status": "FAILED",
        "error_type": "CorruptImage",
        "error_message": "image file is truncated",
        "failed_step": "validate",
        "attempts": 1,
        "created_at": updated_at - 60,
        "updated_at": updated_at,
        "created_at_iso": iso(updated_at - 60),
        "updated_at_iso": iso(updated_at),
    }
    return put_item(key, **(failure | attributes))


def listing(operator: httpx.Client, **params: Any) -> httpx.Response:
    return operator.get("/images", params={"status": "FAILED", **params})


def all_pages(operator: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    """Every page, following next_cursor; the pages' sizes are checked on the way."""
    pages, cursor = [], None
    while True:
        response = listing(operator, **params, **({"cursor": cursor} if cursor else {}))
        assert response.status_code == 200, response.text
        pages.append(response.json())
        cursor = pages[-1]["next_cursor"]
        if cursor is None:
            return pages


def test_pages_follow_each_other_newest_first_without_gaps_or_repeats(
    operator: httpx.Client, prefix: str
) -> None:
    keys = [f"{prefix}{n}.jpg" for n in range(7)]
    for age, key in enumerate(keys):  # keys[0] is the newest
        put_failed(key, FUTURE - age)

    pages = all_pages(operator, key_prefix=prefix, limit=3)

    assert [len(page["items"]) for page in pages] == [3, 3, 1]
    assert [item["ImageKey"] for page in pages for item in page["items"]] == keys


def test_items_are_the_stored_records_with_numbers_and_iso_timestamps(
    operator: httpx.Client, prefix: str
) -> None:
    stored = put_failed(f"{prefix}a.jpg", FUTURE, etag="abc", unknown_attribute={"kept": True})

    response = listing(operator, key_prefix=prefix)

    assert response.json() == {"items": [stored], "next_cursor": None}
    assert f'"updated_at":{FUTURE},' in response.text  # a JSON number
    item = response.json()["items"][0]
    assert datetime.fromisoformat(item["updated_at_iso"]).timestamp() == FUTURE
    assert datetime.fromisoformat(item["created_at_iso"]).timestamp() == FUTURE - 60


def test_without_filters_the_newest_of_the_status_comes_first(
    operator: httpx.Client, prefix: str
) -> None:
    put_item(f"{prefix}older.jpg", overall_processing_status="PROCESSING", updated_at=FUTURE)
    newest = put_item(
        f"{prefix}newest.jpg", overall_processing_status="PROCESSING", updated_at=FUTURE + 10**6
    )
    response = operator.get("/images", params={"status": "PROCESSING", "limit": 1})
    assert response.status_code == 200
    assert response.json()["items"] == [newest]
    assert response.json()["next_cursor"]


def test_filters_by_error_type_and_time(operator: httpx.Client, prefix: str) -> None:
    put_failed(f"{prefix}old.jpg", FUTURE - 100, error_type="NotAnImage")
    put_failed(f"{prefix}mid.jpg", FUTURE - 50)
    put_failed(f"{prefix}new.jpg", FUTURE, error_type="NotAnImage")

    def keys(**params: Any) -> list[str]:
        response = listing(operator, key_prefix=prefix, **params)
        assert response.status_code == 200, response.text
        return [item["ImageKey"].removeprefix(prefix) for item in response.json()["items"]]

    assert keys(error_type="NotAnImage") == ["new.jpg", "old.jpg"]
    assert keys(updated_after=iso(FUTURE - 50), updated_before=iso(FUTURE - 1)) == ["mid.jpg"]
    # A time without zone is UTC.
    naive = datetime.fromtimestamp(FUTURE - 50, UTC).replace(tzinfo=None).isoformat()
    assert keys(updated_before=naive) == ["mid.jpg", "old.jpg"]
    assert keys(updated_after=iso(FUTURE), updated_before=iso(FUTURE - 1)) == []


def test_unicode_and_awkward_keys_page_through_intact(operator: httpx.Client) -> None:
    prefix = f"uploads/фото-{uuid.uuid4().hex[:6]}/東京 "
    names = ["é+%20.jpg", "a b?c#d&e=.png", "%.jpg", "100% real.heic"]
    for age, name in enumerate(names):
        put_failed(prefix + name, FUTURE - age)

    pages = all_pages(operator, key_prefix=prefix, limit=1)

    assert [page["items"][0]["ImageKey"] for page in pages] == [prefix + n for n in names]


@pytest.mark.parametrize(
    "cursor",
    [
        "not a cursor",
        "e30",  # {}
        base64.urlsafe_b64encode(b'{"ImageKey":{"S":"x"}}').decode(),
        "A" * 5000,
    ],
)
def test_a_bad_cursor_is_400_with_a_message(operator: httpx.Client, cursor: str) -> None:
    response = listing(operator, cursor=cursor)
    assert response.status_code == 400
    assert response.json() == {
        "message": "cursor is not valid: pass back a next_cursor of this listing unchanged"
    }


def test_a_cursor_of_another_status_is_400(operator: httpx.Client, prefix: str) -> None:
    for age in range(2):
        put_failed(f"{prefix}{age}.jpg", FUTURE - age)
    cursor = listing(operator, key_prefix=prefix, limit=1).json()["next_cursor"]
    response = operator.get("/images", params={"status": "COMPLETED", "cursor": cursor})
    assert response.status_code == 400
    assert response.json()["message"] == (
        "cursor belongs to a listing of another status than 'COMPLETED'"
    )


def test_a_cursor_outside_the_time_window_is_400(operator: httpx.Client, prefix: str) -> None:
    for age in range(2):
        put_failed(f"{prefix}{age}.jpg", FUTURE - age)
    cursor = listing(operator, key_prefix=prefix, limit=1).json()["next_cursor"]
    response = listing(operator, cursor=cursor, updated_after=iso(FUTURE + 1))
    assert response.status_code == 400
    assert "outside the requested" in response.json()["message"]


@pytest.mark.parametrize(
    ("params", "where"),
    [
        ({}, ["query", "status"]),
        ({"status": "failed"}, ["query", "status"]),
        ({"status": "SUPERSEDED"}, ["query", "status"]),
        ({"status": "FAILED", "limit": 0}, ["query", "limit"]),
        ({"status": "FAILED", "limit": 1001}, ["query", "limit"]),
        ({"status": "FAILED", "limit": "ten"}, ["query", "limit"]),
        ({"status": "FAILED", "updated_after": "yesterday"}, ["query", "updated_after"]),
    ],
)
def test_invalid_parameters_are_422_with_a_message(
    operator: httpx.Client, params: dict[str, Any], where: list[str]
) -> None:
    response = operator.get("/images", params=params)
    assert response.status_code == 422
    body = response.json()
    assert body["message"] == "The request is not valid."
    assert [error["loc"] for error in body["detail"]] == [where]


def test_status_error_names_the_allowed_values(operator: httpx.Client) -> None:
    [error] = operator.get("/images", params={"status": "DONE"}).json()["detail"]
    assert error["msg"] == "Input should be 'PROCESSING', 'COMPLETED' or 'FAILED'"


def test_limit_bounds_are_accepted(operator: httpx.Client, prefix: str) -> None:
    put_failed(f"{prefix}only.jpg", FUTURE)
    for limit in (1, 1000):
        response = listing(operator, key_prefix=prefix, limit=limit)
        assert response.status_code == 200
        assert len(response.json()["items"]) == 1


def test_openapi_describes_the_page_and_the_record(api: str) -> None:
    spec = httpx.get(f"{api}/openapi.json").json()
    schemas = spec["components"]["schemas"]
    ok = spec["paths"]["/images"]["get"]["responses"]["200"]["content"]["application/json"]
    assert ok["schema"] == {"$ref": "#/components/schemas/ImagePage"}
    assert set(schemas["ImagePage"]["required"]) == {"items", "next_cursor"}
    record = schemas["ImageRecord"]
    assert record["required"] == ["ImageKey"]
    assert record["additionalProperties"] is True
    properties = record["properties"]
    assert {"type": "integer"} in properties["created_at"]["anyOf"]
    assert {"type": "string", "format": "date-time"} in properties["updated_at_iso"]["anyOf"]
    statuses = next(s for s in properties["overall_processing_status"]["anyOf"] if "enum" in s)
    assert statuses["enum"] == ["PROCESSING", "COMPLETED", "FAILED"]
    metadata = schemas["ExtractedMetadata"]["properties"]
    for size in ("display_width", "display_height"):
        assert {"type": "integer"} in metadata[size]["anyOf"]
        assert "EXIF orientation" in metadata[size]["description"]
    for path in ("/images/uploads/{filename}/status", "/images/{key}/status", "/images/{key}"):
        content = spec["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]
        assert content["schema"] == {"$ref": "#/components/schemas/ImageRecord"}


def test_attributes_the_item_lacks_are_left_out_not_null(
    operator: httpx.Client, prefix: str
) -> None:
    stored = put_item(
        f"{prefix}bare.jpg",
        overall_processing_status="FAILED",
        updated_at=FUTURE,
        extracted_metadata={"width_pixels": 5},
    )
    [item] = listing(operator, key_prefix=prefix).json()["items"]
    assert item == stored
