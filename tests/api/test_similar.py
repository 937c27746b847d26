"""GET /images/{key}/similar over real HTTP, served by the band indexes on MiniStack."""

from __future__ import annotations

import uuid
from urllib.parse import quote

import httpx

from image_pipeline.duplicates import record_fields
from image_pipeline.imaging.fingerprint import MAX_DISTANCE
from image_pipeline.models import Fingerprint
from tests.api.test_images import put_item


def put_hashed(key: str, dhash: str) -> None:
    fingerprint = Fingerprint(dhash=dhash, pixel_sha256=uuid.uuid4().hex)
    put_item(key, overall_processing_status="COMPLETED", **record_fields(fingerprint))


def similar(client: httpx.Client, key: str, **params: object) -> httpx.Response:
    return client.get(f"/images/{quote(key, safe='/')}/similar", params=params)


def test_lists_the_images_within_the_distance_nearest_first(operator: httpx.Client) -> None:
    prefix = f"uploads/api-similar-{uuid.uuid4().hex[:8]}/"
    base = uuid.uuid4().hex[:16]
    number = int(base, 16)
    put_hashed(prefix + "a photo.jpg", base)
    put_hashed(prefix + "two bits.jpg", f"{number ^ 0b101:016x}")
    put_hashed(prefix + "one bit.jpg", f"{number ^ (1 << 63):016x}")
    put_hashed(prefix + "far.jpg", f"{number ^ 0xFF00FF:016x}")  # 16 bits away

    response = similar(operator, prefix + "a photo.jpg", max_distance=2)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ImageKey"] == prefix + "a photo.jpg" and body["dhash"] == base
    assert body["complete"] is True and body["max_distance"] == 2
    assert [(i["ImageKey"], i["distance"]) for i in body["items"]] == [
        (prefix + "one bit.jpg", 1),
        (prefix + "two bits.jpg", 2),
    ]
    default = similar(operator, prefix + "a photo.jpg", limit=1).json()
    assert default["max_distance"] == 4 and len(default["items"]) == 1


def test_a_distance_beyond_the_bands_is_refused_with_422(operator: httpx.Client) -> None:
    response = similar(operator, "uploads/x.jpg", max_distance=MAX_DISTANCE + 1)

    assert response.status_code == 422
    [problem] = response.json()["detail"]
    assert problem["loc"] == ["query", "max_distance"]
    assert f"less than or equal to {MAX_DISTANCE}" in problem["msg"]
    assert similar(operator, "uploads/x.jpg", max_distance=-1).status_code == 422


def test_unknown_and_unhashed_images(operator: httpx.Client) -> None:
    assert similar(operator, f"uploads/none-{uuid.uuid4().hex}.jpg").status_code == 404
    key = f"uploads/failed-{uuid.uuid4().hex}.jpg"
    put_item(key, overall_processing_status="FAILED")

    response = similar(operator, key)

    assert response.status_code == 409
    assert "no perceptual hash" in response.json()["message"]


def test_needs_the_operator_key(api: str, operator_key: str) -> None:
    with httpx.Client(base_url=api, timeout=30) as anonymous:
        response = similar(anonymous, "uploads/x.jpg")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
