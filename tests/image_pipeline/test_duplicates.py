"""Duplicate and near-duplicate search through the table's indexes, on MiniStack."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from image_pipeline import duplicates
from image_pipeline.aws import client
from image_pipeline.duplicates import find_duplicate, record_fields, similar_to
from image_pipeline.imaging.fingerprint import MAX_DISTANCE, bands, hamming
from image_pipeline.models import Fingerprint
from image_pipeline.records import to_dynamo
from image_pipeline.settings import get_settings

pytestmark = pytest.mark.usefixtures("aws_stack")


def flipped(value: str, bits: int) -> str:
    """`value` with `bits` bits flipped, one in each band from band 0 on: the hardest case
    for the search, since only band `bits` still matches."""
    number = int(value, 16)
    for i in range(bits):
        number ^= 1 << (63 - (i * 8 % 64) - i // 8)  # band 0 holds the leading bits
    return f"{number:016x}"


def put(key: str, dhash: str, digest: str | None = None, created_at: int | str = 1000) -> None:
    """A COMPLETED item with this fingerprint, as `store` writes it."""
    fingerprint = Fingerprint(dhash=dhash, pixel_sha256=digest or uuid.uuid4().hex)
    item = {"ImageKey": key, "overall_processing_status": "COMPLETED", "created_at": created_at}
    item |= record_fields(fingerprint)
    client("dynamodb").put_item(
        TableName=get_settings().table_name, Item={k: to_dynamo(v) for k, v in item.items()}
    )


@pytest.fixture
def operations() -> Iterator[list[str]]:
    """The DynamoDB operations the code under test calls."""
    called: list[str] = []

    def record(model: Any, **_: Any) -> None:
        called.append(model.name)

    events = client("dynamodb").meta.events
    events.register("before-call.dynamodb", record)
    yield called
    events.unregister("before-call.dynamodb", record)


def test_flipped_leaves_exactly_one_band_of_the_first_n_plus_1() -> None:
    base = "0123456789abcdef"
    for bits in range(MAX_DISTANCE + 1):
        other = flipped(base, bits)
        assert hamming(base, other) == bits
        same = [a == b for a, b in zip(bands(base), bands(other), strict=True)]
        assert same[: bits + 1] == [False] * bits + [True]


def random_hash() -> str:
    return uuid.uuid4().hex[:16]


def test_similar_finds_every_image_within_the_distance_and_no_other(operations) -> None:
    base = random_hash()
    prefix = f"uploads/similar-{uuid.uuid4().hex[:8]}/"
    put(prefix + "self.jpg", base)
    for bits in range(MAX_DISTANCE + 3):
        put(f"{prefix}{bits}.jpg", flipped(base, bits))
    operations.clear()

    for max_distance in (0, 3, MAX_DISTANCE):
        found = similar_to(prefix + "self.jpg", base, max_distance, limit=100)
        assert found.complete
        assert [(m.key, m.distance) for m in found.items] == [
            (f"{prefix}{bits}.jpg", bits) for bits in range(max_distance + 1)
        ]
    assert set(operations) == {"Query"}  # never a Scan
    assert [m.distance for m in similar_to(prefix + "x", base, MAX_DISTANCE, limit=2).items] == [
        0,
        0,
    ]


def test_similar_refuses_a_distance_the_bands_cannot_serve() -> None:
    with pytest.raises(ValueError, match=f"between 0 and {MAX_DISTANCE}"):
        similar_to("uploads/x.jpg", random_hash(), MAX_DISTANCE + 1, limit=10)


def test_a_crowded_band_stops_the_search_and_says_so(monkeypatch) -> None:
    base = random_hash()
    prefix = f"uploads/crowd-{uuid.uuid4().hex[:8]}/"
    for i in range(5):
        put(f"{prefix}{i}.jpg", base)
    monkeypatch.setattr(duplicates, "MAX_CANDIDATES", 3)

    found = similar_to(prefix + "0.jpg", base, 2, limit=100)

    assert not found.complete and len(found.items) <= 3


def test_find_duplicate_names_the_oldest_other_image_with_the_same_pixels(operations) -> None:
    digest = uuid.uuid4().hex * 2
    prefix = f"uploads/dup-{uuid.uuid4().hex[:8]}/"
    put(prefix + "second.jpg", random_hash(), digest, created_at=2000)
    put(prefix + "first.jpg", random_hash(), digest, created_at=1000)
    put(prefix + "other.jpg", random_hash(), created_at=500)
    operations.clear()

    assert find_duplicate(digest, prefix + "new.jpg") == prefix + "first.jpg"
    assert find_duplicate(digest, prefix + "first.jpg") == prefix + "second.jpg"
    assert find_duplicate(uuid.uuid4().hex, prefix + "new.jpg") is None
    assert set(operations) == {"Query"}
    # created_at as text (an older writer's item) is still stored, and sorts last.
    put(prefix + "text.jpg", random_hash(), digest, created_at="100")
    assert find_duplicate(digest, prefix + "new.jpg") == prefix + "first.jpg"
