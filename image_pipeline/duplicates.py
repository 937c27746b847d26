"""Duplicates and near-duplicates, found through the table's indexes, never by a scan.

Exact duplicates: `pixel_sha256-index` (hash `pixel_sha256`, projecting `created_at`) gives
the images with the same pixels; they are put oldest first here (by `created_at`, whole
seconds, then by key). Not a range key: an index key fixes its attribute's type in every
item of the table, and items of older writers may hold `created_at` as text.

Near-duplicates: multi-index hashing. The 64-bit dHash is cut into `BANDS` bands of 8 bits,
each the hash key of an index of its own (`dhash-band-{i}-index` on `dhash_band_{i}`,
projecting `dhash`). Two hashes within N bits of each other, N < BANDS, agree on at least
one of any N + 1 bands (pigeonhole), so a search at distance N queries N + 1 band indexes
for the image's own band values and keeps the candidates whose full hash is within N. A
search reads the images that share a band, about (N + 1) / 256 of the table for uniformly
spread hashes, and at most `MAX_CANDIDATES`.

Only `COMPLETED` versions are in these indexes: the attributes are written with the result
and removed when a run claims the image again (`INDEX_ATTRIBUTES`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel

from image_pipeline.aws import client
from image_pipeline.imaging.fingerprint import (
    BANDS,
    MAX_DISTANCE,
    bands,
    dhash,
    hamming,
    pixel_digest,
)
from image_pipeline.models import DecodedImage, Fingerprint, SourceObject
from image_pipeline.settings import get_settings

DIGEST_INDEX = "pixel_sha256-index"
BAND_ATTRIBUTES = tuple(f"dhash_band_{i}" for i in range(BANDS))
BAND_INDEXES = tuple(f"dhash-band-{i}-index" for i in range(BANDS))
# What places an item in the indexes above; removed when a run claims the image.
INDEX_ATTRIBUTES = ("pixel_sha256", *BAND_ATTRIBUTES)
# Copies of one picture read to find the oldest: enough for any real library, and bounded.
MAX_DUPLICATES_READ = 1000
# A search stops reading candidates here, so one request's cost stays bounded even when many
# images share a band (flat, blank pictures all hash alike).
MAX_CANDIDATES = 10_000


def fingerprint(source: SourceObject, image: DecodedImage) -> Fingerprint:
    """The image's hash and pixel digest, and the earlier image it duplicates, if any."""
    digest = pixel_digest(image.pixels)
    return Fingerprint(
        dhash=dhash(image.pixels),
        pixel_sha256=digest,
        duplicate_of=find_duplicate(digest, source.key),
    )


def record_fields(fingerprint: Fingerprint) -> dict[str, Any]:
    """The item's attributes for `fingerprint`: the hash, its bands and the digest."""
    return {
        "dhash": fingerprint.dhash,
        "pixel_sha256": fingerprint.pixel_sha256,
        **dict(zip(BAND_ATTRIBUTES, bands(fingerprint.dhash), strict=True)),
    }


def find_duplicate(pixel_sha256: str, key: str) -> str | None:
    """The oldest other image with exactly these pixels, or None."""
    return next(find_duplicates(pixel_sha256, key), None)


def find_duplicates(pixel_sha256: str, key: str) -> Iterator[str]:
    """The other images with exactly these pixels, oldest first (of the first
    `MAX_DUPLICATES_READ` the index holds)."""
    paginator = client("dynamodb").get_paginator("query")
    pages = paginator.paginate(
        TableName=get_settings().table_name,
        IndexName=DIGEST_INDEX,
        KeyConditionExpression="pixel_sha256 = :digest",
        ExpressionAttributeValues={":digest": {"S": pixel_sha256}},
        PaginationConfig={"MaxItems": MAX_DUPLICATES_READ},
    )
    found = [item for page in pages for item in page.get("Items", [])]
    found.sort(key=lambda item: (_created(item), item["ImageKey"]["S"]))
    for item in found:
        if item["ImageKey"]["S"] != key:
            yield str(item["ImageKey"]["S"])


def _created(item: dict[str, Any]) -> float:
    try:
        return float(item["created_at"]["N"])
    except (KeyError, ValueError):  # absent, or text written by an older writer: last
        return float("inf")


class Match(BaseModel):
    key: str
    distance: int
    dhash: str


class Matches(BaseModel):
    items: list[Match]
    complete: bool  # False when MAX_CANDIDATES stopped the search


def similar_to(key: str, dhash: str, max_distance: int, limit: int) -> Matches:
    """The images whose dHash is within `max_distance` bits of `dhash`, nearest first."""
    if not 0 <= max_distance <= MAX_DISTANCE:
        raise ValueError(f"max_distance must be between 0 and {MAX_DISTANCE}")
    candidates: dict[str, str] = {}
    complete = True
    for index, attribute, value in zip(
        BAND_INDEXES[: max_distance + 1], BAND_ATTRIBUTES, bands(dhash), strict=False
    ):
        complete = _read_band(index, attribute, value, candidates)
        if not complete:
            break
    matches = [
        Match(key=other, distance=distance, dhash=other_hash)
        for other, other_hash in candidates.items()
        if other != key and (distance := hamming(dhash, other_hash)) <= max_distance
    ]
    matches.sort(key=lambda m: (m.distance, m.key))
    return Matches(items=matches[:limit], complete=complete)


def _read_band(index: str, attribute: str, value: str, candidates: dict[str, str]) -> bool:
    """Add the band's images to `candidates`; False when MAX_CANDIDATES was reached."""
    paginator = client("dynamodb").get_paginator("query")
    pages = paginator.paginate(
        TableName=get_settings().table_name,
        IndexName=index,
        KeyConditionExpression="#band = :band",
        ExpressionAttributeNames={"#band": attribute},
        ExpressionAttributeValues={":band": {"S": value}},
    )
    for page in pages:
        for item in page.get("Items", []):
            candidates[item["ImageKey"]["S"]] = item["dhash"]["S"]
            if len(candidates) >= MAX_CANDIDATES:
                return False
    return True
