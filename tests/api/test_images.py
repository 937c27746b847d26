"""Status routes, health and the error contract, over real HTTP against MiniStack."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from api.main import create_app
from deployments.local.processes import free_port
from image_pipeline.aws import client
from image_pipeline.records import to_dynamo
from image_pipeline.settings import get_settings
from tests.api.conftest import serve

NOT_FOUND = {"message": "Image details not found for the given image identifier."}


def put_item(key: str, **attributes: Any) -> dict[str, Any]:
    item = {"ImageKey": key, **attributes}
    client("dynamodb").put_item(
        TableName=get_settings().table_name,
        Item={name: to_dynamo(value) for name, value in item.items()},
    )
    return item


def get(client: httpx.Client, key: str, suffix: str = "/status") -> httpx.Response:
    # What a client does: percent-encode the key, keeping its slashes as path separators.
    return client.get(f"/images/{quote(key, safe='/')}{suffix}")


def a_completed_item(key: str) -> dict[str, Any]:
    return put_item(
        key,
        s3_bucket_original=get_settings().uploads_bucket,
        s3_key_original=key,
        overall_processing_status="COMPLETED",
        thumbnails={"100x100": f"s3://thumbs/thumbnails/{key}/100x100.jpg"},
        extracted_metadata={
            "width_pixels": 640,
            "filesize_bytes": 12345,
            "rekognition_labels": [{"Name": "Cat", "Confidence": 99.5}],
        },
        created_at=1700000000,
        updated_at=1700000001,
    )


def test_original_route_answers_the_raw_item(api: str) -> None:
    name = f"{uuid.uuid4().hex[:8]}.jpg"
    item = a_completed_item(f"uploads/{name}")
    response = httpx.get(f"{api}/images/uploads/{name}/status")
    assert response.status_code == 200
    assert response.json() == item
    assert '"created_at":1700000000' in response.text  # a JSON number, not "1700000000"
    assert '"Confidence":99.5' in response.text


def canonical(value: Any) -> str:
    # Byte for byte but for key order (DynamoDB keeps none): 99 and 99.0, "1" and 1, true
    # and 1 all differ here, where == would call them equal.
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def a_legacy_item(key: str) -> dict[str, Any]:
    """Written by the original pipeline or by hand: types the typed model would change."""
    return put_item(
        key,
        overall_processing_status="COMPLETED",
        extracted_metadata={
            "filename": key.rsplit("/", 1)[-1],
            "rekognition_labels": [{"Name": "Chat noir é", "Confidence": 99}],
        },
        source_last_modified=1700000000,  # the model says float: it would add ".0"
        created_at="1700000000",  # a string where the model says integer
        flags={"ok": True, "nothing": None, "ratio": 0.1, "list": [1, "2", [3.5]]},
        not_a_field_of_the_model="kept",
    )


def test_original_route_answers_the_item_byte_for_byte(api: str) -> None:
    name = f"{uuid.uuid4().hex[:8]} фото.jpg"
    item = a_legacy_item(f"uploads/{name}")

    response = httpx.get(f"{api}/images/uploads/{quote(name)}/status")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert canonical(response.json()) == canonical(item)
    assert '"Confidence":99}' in response.text
    assert '"created_at":"1700000000"' in response.text
    # Compact UTF-8, as before: no spaces, no \u escapes.
    body = json.dumps(response.json(), ensure_ascii=False, separators=(",", ":")).encode()
    assert response.content == body


def test_general_routes_answer_the_typed_record(operator: httpx.Client) -> None:
    key = f"uploads/{uuid.uuid4().hex[:8]}/x.jpg"  # in a folder: not the original's route
    item = put_item(
        key,
        overall_processing_status="COMPLETED",
        extracted_metadata={"rekognition_labels": [{"Name": "Cat", "Confidence": 99}]},
        source_last_modified=1700000000,
        not_a_field_of_the_model="kept",
    )
    for suffix in ("/status", ""):
        response = get(operator, key, suffix)
        assert response.json() == item  # same values, unknown attributes kept
        assert '"Confidence":99.0' in response.text  # typed as the schema says: a float
        assert '"source_last_modified":1700000000.0' in response.text


def test_original_route_404_body_is_unchanged(api: str) -> None:
    response = httpx.get(f"{api}/images/uploads/{uuid.uuid4().hex}.jpg/status")
    assert response.status_code == 404
    assert response.json() == NOT_FOUND


@pytest.mark.parametrize(
    "name",
    [
        "x y+z.jpg",
        "100% real.jpg",
        "a%20b.jpg",
        "a+b%2Bc.png",
        "фото 東京 é.jpeg",
        "deep/er/path/photo.jpg",
        "what?#hash&amp;=.jpg",
    ],
)
@pytest.mark.parametrize("suffix", ["/status", ""])
def test_any_key_round_trips(operator: httpx.Client, name: str, suffix: str) -> None:
    key = f"uploads/{uuid.uuid4().hex[:8]}/{name}"
    item = a_completed_item(key)
    response = get(operator, key, suffix)
    assert response.status_code == 200, response.text
    assert response.json()["ImageKey"] == key
    assert response.json() == item


def test_a_key_ending_in_status_is_asked_for_with_the_suffix(operator: httpx.Client) -> None:
    key = f"uploads/{uuid.uuid4().hex[:8]}/status"
    item = a_completed_item(key)
    assert get(operator, key).json() == item
    # Without the suffix the path reads as the status of the key's parent "folder".
    assert get(operator, key, "").json() == NOT_FOUND


def test_keys_outside_uploads_are_found_too(operator: httpx.Client) -> None:
    key = f"elsewhere/{uuid.uuid4().hex}.png"
    put_item(key, overall_processing_status="FAILED", error_type="NotAnImage")
    assert get(operator, key).json()["error_type"] == "NotAnImage"
    assert get(operator, key, "").json()["ImageKey"] == key


def test_the_original_route_and_the_general_one_agree(api: str, operator: httpx.Client) -> None:
    key = f"uploads/{uuid.uuid4().hex[:8]}.jpg"
    item = a_completed_item(key)
    assert get(operator, key).json() == item
    assert httpx.get(f"{api}/images/{key}/status").json() == item


@pytest.mark.parametrize("path", ["/images/nope.jpg", "/images/a/b/status", "/images//status"])
def test_unknown_keys_are_404_with_the_original_body(operator: httpx.Client, path: str) -> None:
    response = operator.get(path)
    assert response.status_code == 404
    assert response.json() == NOT_FOUND


def test_overlong_key_is_404(operator: httpx.Client) -> None:
    assert get(operator, "uploads/" + "é" * 600).json() == NOT_FOUND


def test_dynamodb_outage_is_503_with_a_message(api: str, configure: Callable[..., None]) -> None:
    configure(aws_endpoint_url=f"http://127.0.0.1:{free_port()}")
    response = httpx.get(f"{api}/images/uploads/a.jpg/status", timeout=60)
    assert response.status_code == 503
    assert response.json() == {
        "message": "Image records are unavailable right now; try again later."
    }


def test_healthz(api: str) -> None:
    response = httpx.get(f"{api}/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_when_the_table_answers(api: str) -> None:
    response = httpx.get(f"{api}/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_when_it_does_not(api: str, configure: Callable[..., None]) -> None:
    configure(aws_endpoint_url=f"http://127.0.0.1:{free_port()}")
    response = httpx.get(f"{api}/readyz", timeout=60)
    assert response.status_code == 503
    assert response.json() == {
        "message": f"DynamoDB table {get_settings().table_name!r} is not reachable."
    }


def test_readyz_when_the_table_is_missing(api: str, configure: Callable[..., None]) -> None:
    configure(table_name=f"missing-{uuid.uuid4().hex[:8]}")
    assert httpx.get(f"{api}/readyz").status_code == 503


ORIGIN = "https://photos.example.com"


def cross_origin(api: str) -> tuple[httpx.Response, httpx.Response]:
    """A browser's read of the open route from ORIGIN, and its preflight."""
    origin = {"Origin": ORIGIN}
    response = httpx.get(f"{api}/images/uploads/nope.jpg/status", headers=origin)
    preflight = httpx.options(
        f"{api}/images/uploads/a.jpg/status",
        headers=origin | {"Access-Control-Request-Method": "GET"},
    )
    return response, preflight


def test_cors_allows_no_origin_by_default(api: str) -> None:
    response, preflight = cross_origin(api)
    assert response.status_code == 404  # answered, but a browser keeps it from the page
    assert "access-control-allow-origin" not in response.headers
    assert "access-control-allow-origin" not in preflight.headers


@pytest.mark.parametrize(
    ("configured", "allowed"), [(f"https://other.example.com, {ORIGIN}", ORIGIN), ("*", "*")]
)
def test_cors_allows_the_configured_origins(
    aws_stack: str, configure: Callable[..., None], configured: str, allowed: str
) -> None:
    configure(cors_origins=configured)
    with serve(create_app()) as api:  # the middleware reads the origins when the app is built
        response, preflight = cross_origin(api)
    assert response.headers["access-control-allow-origin"] == allowed
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == allowed


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/nowhere", 404), ("POST", "/healthz", 405), ("GET", "/events/s3", 405)],
)
def test_framework_errors_are_json_with_a_message(
    api: str, method: str, path: str, status: int
) -> None:
    response = httpx.request(method, f"{api}{path}")
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert isinstance(response.json()["message"], str)


def test_openapi_documents_the_routes(api: str) -> None:
    paths = httpx.get(f"{api}/openapi.json").json()["paths"]
    assert set(paths) >= {
        "/events/s3",
        "/images/uploads/{filename}/status",
        "/images/{key}/status",
        "/images/{key}",
        "/images",
        "/images/{key}/reprocess",
        "/healthz",
        "/readyz",
    }
    assert paths["/images/uploads/{filename}/status"]["get"]["responses"]["404"]


def test_moderation_and_label_parents_are_served_and_documented(
    api: str, operator: httpx.Client
) -> None:
    key = f"uploads/{uuid.uuid4().hex[:8]}/held.jpg"
    item = put_item(
        key,
        overall_processing_status="COMPLETED",
        extracted_metadata={
            "rekognition_labels": [
                {"Name": "Cat", "Confidence": 99.9, "Parents": [{"Name": "Feline"}]}
            ]
        },
        labels_source="local",
        moderation_status="FLAGGED",
        moderation_source="s3",
        moderation_labels=[
            {"Name": "Explicit", "Confidence": 97.5, "ParentName": "", "TaxonomyLevel": 1}
        ],
    )
    response = get(operator, key)
    assert response.status_code == 200
    assert response.json() == item

    schemas = httpx.get(f"{api}/openapi.json").json()["components"]["schemas"]
    record = schemas["ImageRecord"]["properties"]
    assert {"moderation_status", "moderation_labels", "moderation_error"} <= set(record)
    assert "FLAGGED" in json.dumps(record["moderation_status"])
    assert set(schemas["ModerationLabel"]["properties"]) == {
        "Name",
        "Confidence",
        "ParentName",
        "TaxonomyLevel",
    }
    assert "Parents" in schemas["Label"]["properties"]
