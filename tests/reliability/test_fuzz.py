"""Mutated real images: every outcome is COMPLETED or a clean FAILED with a known error type.

Hypothesis drives the per-image path of the backfill, `tasks.batch.process_one` (the task
functions the flow calls, as plain functions) against MiniStack; a few fixed mutations go
through the real flow too. Derandomized, with no example database: the same examples on
every machine, so CI is stable.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from image_pipeline.models import ImageWork
from image_pipeline.records import read_item
from image_pipeline.settings import get_settings
from image_pipeline.sources import head_source
from tasks.batch import process_one
from tests import images
from tests.reliability.conftest import put_upload, run, thumbnail_objects, unique_key

# The error types validation gives for bad bytes; anything else is a bug surfacing as FAILED.
KNOWN_ERROR_TYPES = frozenset(
    {
        "EmptyFile",
        "NotAnImage",
        "UnsupportedFormat",
        "FileTooLarge",
        "TooManyPixels",
        "CorruptImage",
    }
)

BASES = {
    "jpeg": images.jpeg((96, 64), exif_orientation=6, make="Fuzz", gps=(10.5, -20.25)),
    "png": images.png((96, 64), "RGBA"),
    "gif": images.gif((96, 64), frames=2),
    "webp": images.webp((96, 64)),
    "tiff": images.tiff((96, 64)),
    "heic": images.heic((96, 64)),
}


@dataclass(frozen=True)
class BitFlips:
    positions: tuple[tuple[int, int], ...]  # (byte offset, bit)

    def apply(self, data: bytes) -> bytes:
        mutated = bytearray(data)
        for offset, bit in self.positions:
            mutated[offset % len(mutated)] ^= 1 << bit
        return bytes(mutated)


@dataclass(frozen=True)
class Truncation:
    fraction: float

    def apply(self, data: bytes) -> bytes:
        return data[: int(len(data) * self.fraction)]


@dataclass(frozen=True)
class Splice:
    """The first `length` bytes of another format's file over this one's, or the reverse."""

    other: str
    length: int
    header_of_other: bool

    def apply(self, data: bytes) -> bytes:
        other = BASES[self.other]
        if self.header_of_other:
            return other[: self.length] + data[self.length :]
        return data[: self.length] + other[self.length :]


offsets = st.integers(0, 63) | st.integers(0, 1 << 20)  # headers matter most
mutations = st.one_of(
    st.builds(
        BitFlips, st.lists(st.tuples(offsets, st.integers(0, 7)), min_size=1, max_size=6).map(tuple)
    ),
    st.builds(Truncation, st.floats(0.0, 0.99)),
    st.builds(Splice, st.sampled_from(sorted(BASES)), st.integers(1, 64), st.booleans()),
)


def assert_clean_outcome(key: str, status: str, error_type: str | None) -> None:
    item = read_item(key)
    assert item is not None
    assert item["overall_processing_status"] == status
    if status == "FAILED":
        assert error_type in KNOWN_ERROR_TYPES, (error_type, item.get("error_message"))
        assert item["failed_step"] == "validate" and item["error_message"]
        assert thumbnail_objects(key) == {}
    else:
        stored = thumbnail_objects(key)
        assert len(stored) == 2
        for thumb in stored.values():
            assert thumb.width <= 640 and thumb.height <= 480


@pytest.mark.usefixtures("aws_stack")
# Pillow warns about the damage it skips over (TIFF tags past the end, bad EXIF): expected here.
@pytest.mark.filterwarnings("ignore::UserWarning")
@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(fmt=st.sampled_from(sorted(BASES)), mutation=mutations)
def test_mutated_images_complete_or_fail_cleanly(fmt: str, mutation) -> None:
    key = unique_key(f"fuzz.{fmt}")
    put_upload(key, mutation.apply(BASES[fmt]))
    source = head_source(get_settings().uploads_bucket, key, None)

    outcome = process_one(ImageWork(source=source, run_id=f"fuzz-{uuid.uuid4()}"), inline=True)

    assert outcome.action in ("COMPLETED", "FAILED"), outcome
    assert_clean_outcome(key, outcome.action, outcome.error_type)


def fixed_mutation(fmt: str, seed: int) -> bytes:
    rng = random.Random(seed)
    flips = tuple((rng.randrange(len(BASES[fmt])), rng.randrange(8)) for _ in range(3))
    return BitFlips(flips).apply(BASES[fmt])


@pytest.mark.usefixtures("prefect_server", "aws_stack")
@pytest.mark.parametrize(
    "data",
    [
        fixed_mutation("jpeg", 1),
        fixed_mutation("png", 2),
        Splice("jpeg", 16, header_of_other=True).apply(BASES["webp"]),
        Truncation(0.6).apply(BASES["heic"]),
    ],
    ids=["jpeg-bit-flips", "png-bit-flips", "webp-with-jpeg-header", "heic-truncated"],
)
def test_mutated_images_through_the_flow(data: bytes) -> None:
    key = unique_key("mutant")
    state, item = run(key, data)

    assert item is not None
    if state.is_completed():
        assert_clean_outcome(key, "COMPLETED", None)
    else:
        assert state.is_failed(), state
        assert_clean_outcome(key, "FAILED", item["error_type"])
