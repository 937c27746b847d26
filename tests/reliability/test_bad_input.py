"""Bad input through the real flow: a clean FAILED (error type, message, notice naming the
key, no thumbnails), and the process unharmed: the next good image in it still completes.

Outcomes (input → error_type: message):
    empty file                      → EmptyFile: The file is 0 bytes long.
    text named .jpg, HTML named .png → NotAnImage: ... starts with no known image signature.
    PDF named .jpg                  → UnsupportedFormat: The file is in PDF format, ...
    BMP with an odd bitfields mask  → UnsupportedFormat: The file is a BMP in a variant ...
    truncated JPEG / PNG            → CorruptImage: The image data is truncated or corrupt (...)
    PNG declaring 30000x30000       → TooManyPixels: The image has more than twice the limit ...
    GIF with a 60000x60000 frame    → TooManyPixels: The image has more than twice the limit ...
    PNG over the limit, under twice → TooManyPixels: The image is 1200x1000 pixels ...
    over IMAGE_PIPELINE_MAX_FILE_BYTES → FileTooLarge: The file is ... over the limit of ...
    key with a . or .. segment      → UnsafeKey: The key has a '.' or '..' path segment ...
    key too long for its thumbnails → KeyTooLong: ... over S3's limit of 1024 ...
    corrupt EXIF block              → COMPLETED, without EXIF
    control characters in the key   → COMPLETED; the notice escapes what SNS refuses
"""

from __future__ import annotations

import resource
from typing import Any

import pytest
from botocore.exceptions import ClientError
from prefect.client.orchestration import get_client

from image_pipeline.aws import client
from image_pipeline.notify import sns_text
from tests import images
from tests.reliability.conftest import Notices, run, thumbnail_objects, unique_key
from tests.reliability.faults import sns_refuses_invalid_characters

pytestmark = pytest.mark.usefixtures("prefect_server", "aws_stack")

GOOD = images.jpeg((160, 120))
MB = 1024 * 1024


def assert_clean_failure(
    key: str, outcome: tuple[Any, dict | None], notices: Notices, error_type: str, says: str
) -> dict[str, Any]:
    state, item = outcome
    assert state.is_failed(), state
    assert item is not None, "a failure is recorded"
    assert item["overall_processing_status"] == "FAILED"
    assert (item["error_type"], item["failed_step"]) == (error_type, "validate")
    assert says in item["error_message"], item["error_message"]
    assert item["validation_status"] == "INVALID"
    assert "thumbnails" not in item
    assert thumbnail_objects(key) == {}
    [notice] = notices.wait_for(sns_text(key), settle=False)
    assert notice["Subject"] == "FAILURE: Image Processing Error"
    assert notice["MessageAttributes"]["processing_status"]["Value"] == "FAILURE"
    assert sns_text(key) in notice["Message"] and error_type in notice["Message"]
    return item


def assert_next_good_image_completes() -> None:
    state, item = run(unique_key("next-good.jpg"), GOOD)
    assert state.is_completed(), state
    assert item and item["overall_processing_status"] == "COMPLETED"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


BAD_CONTENT = [
    pytest.param("empty.jpg", b"", "EmptyFile", "0 bytes", id="empty"),
    pytest.param("text.jpg", images.TEXT, "NotAnImage", "not an image", id="text-as-jpg"),
    pytest.param("page.png", images.HTML, "NotAnImage", "not an image", id="html-as-png"),
    pytest.param("document.jpg", images.pdf(), "UnsupportedFormat", "PDF", id="pdf-as-jpg"),
    pytest.param(
        "rgb444.bmp",
        images.bmp_variant(bits=16, compression=3, masks=(0xF00, 0xF0, 0xF)),
        "UnsupportedFormat",
        "a BMP in a variant that cannot be read (Unsupported BMP bitfields layout)",
        id="bmp-bitfields-variant",
    ),
    pytest.param(
        "cut.jpg",
        images.truncate(images.jpeg((640, 480))),
        "CorruptImage",
        "truncated",
        id="truncated-jpeg",
    ),
    pytest.param(
        "cut.png",
        images.truncate(images.png((640, 480))),
        "CorruptImage",
        "truncated",
        id="truncated-png",
    ),
    pytest.param(
        "bomb.png", images.png_bomb(30000, 30000), "TooManyPixels", "twice the limit", id="png-bomb"
    ),
    pytest.param(
        "bomb.gif",
        images.gif_huge_frame((60000, 60000)),
        "TooManyPixels",
        "twice the limit",
        id="gif-huge-frame",
    ),
]


@pytest.mark.parametrize(("name", "data", "error_type", "says"), BAD_CONTENT)
def test_bad_content_fails_cleanly(name, data, error_type, says, notices) -> None:
    key = unique_key(name)
    rss_before = peak_rss_mb()

    assert_clean_failure(key, run(key, data), notices, error_type, says)

    # Bombs are refused from the header: nothing near width x height bytes is ever allocated.
    assert peak_rss_mb() - rss_before < 300
    assert_next_good_image_completes()


def test_image_over_the_size_limit_fails_before_download(configure, notices) -> None:
    configure(max_file_bytes=MB)
    key = unique_key("big.png")
    data = images.png((1200, 1000), detail=True, compress_level=0)  # about 3.4 MB
    assert len(data) > MB

    item = assert_clean_failure(key, run(key, data), notices, "FileTooLarge", "over the limit")
    assert "1.0 MB" in item["error_message"]
    assert_next_good_image_completes()


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # Pillow's, first
def test_image_over_the_pixel_limit_is_refused_with_its_size(configure, notices) -> None:
    configure(max_pixels=1_000_000)
    key = unique_key("large.png")
    data = images.png_bomb(1200, 1000)  # its header only: nothing is decoded

    assert_clean_failure(key, run(key, data), notices, "TooManyPixels", "1200x1000 pixels")
    assert_next_good_image_completes()


def test_corrupt_exif_still_completes_without_exif(notices) -> None:
    key = unique_key("bad-exif.jpg")
    state, item = run(key, images.corrupt_exif_jpeg((320, 240)))

    assert state.is_completed(), state
    assert item and item["overall_processing_status"] == "COMPLETED"
    assert "exif" not in item["extracted_metadata"]
    assert len(thumbnail_objects(key)) == 2
    [notice] = notices.wait_for(key, settle=False)
    assert notice["Subject"] == "SUCCESS: Image Processing Complete"


# --- keys ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a/../b.jpg", "./here.jpg"], ids=lambda name: name)
def test_key_with_dot_segments_fails_before_any_work(name: str, notices) -> None:
    key = unique_key(name)
    assert_clean_failure(key, run(key, GOOD), notices, "UnsafeKey", "path segment")
    assert_next_good_image_completes()


def key_of_bytes(size: int, filler: str = "k") -> str:
    """An uploads key of exactly `size` UTF-8 bytes ending in `.jpg`."""
    key = unique_key("")
    room = size - len(key.encode()) - len(".jpg")
    body = filler * (room // len(filler.encode()))
    body += "k" * (room - len(body.encode()))
    key += body + ".jpg"
    assert len(key.encode()) == size
    return key


# thumbnails/{key}/640x480.jpg: 23 bytes more than the key, and S3 allows 1024.
LONGEST_PROCESSED = 1024 - len("thumbnails/") - len("/640x480.jpg")


@pytest.mark.parametrize(
    ("size", "filler"),
    [(LONGEST_PROCESSED + 1, "日"), (1024, "k")],
    ids=["multibyte-one-byte-over", "s3-maximum"],
)
def test_key_too_long_for_its_thumbnails_fails_before_any_work(size, filler, notices) -> None:
    key = key_of_bytes(size, filler)
    item = assert_clean_failure(key, run(key, GOOD), notices, "KeyTooLong", "limit of 1024")
    assert f"up to {LONGEST_PROCESSED} bytes" in item["error_message"]
    assert_next_good_image_completes()


def test_longest_key_that_fits_completes(notices) -> None:
    key = key_of_bytes(LONGEST_PROCESSED, "日")  # bytes count, not characters
    state, item = run(key, GOOD)

    assert state.is_completed(), state
    assert item and item["ImageKey"] == key
    stored = thumbnail_objects(key)
    assert len(stored) == 2
    assert max(len(k.encode()) for k in stored) == 1024
    [notice] = notices.wait_for(key, settle=False)
    assert notice["MessageAttributes"]["imageId"]["Value"] == key


CONTROL_KEYS = [
    "tab\tline\nbreak\rreturn.jpg",  # what SNS accepts
    "bell\x07soh\x01escape\x1b[31mred.jpg",  # what SNS refuses
    "delete\x7f separator\u2028bom\ufeff.jpg",  # odd, but accepted
]


@pytest.mark.parametrize("name", CONTROL_KEYS, ids=repr)
def test_control_characters_in_the_key(name: str, notices, caplog) -> None:
    """Processed like any key: item and thumbnails under the exact key, the notice sent with
    what SNS refuses escaped (real SNS answers InvalidParameterValue for those)."""
    key = unique_key(name)
    with sns_refuses_invalid_characters() as refusals:
        state, item = run(key, GOOD)

    assert state.is_completed(), state
    assert item and item["ImageKey"] == key == item["s3_key_original"]
    assert item["overall_processing_status"] == "COMPLETED"
    assert len(thumbnail_objects(key)) == 2
    assert refusals == []
    [notice] = notices.wait_for(sns_text(key), settle=False)
    assert notice["Subject"] == "SUCCESS: Image Processing Complete"
    assert "An error was encountered while running hook" not in caplog.text
    with get_client(sync_client=True) as prefect:  # the run's name is the key, stored as is
        assert prefect.read_flow_run(state.state_details.flow_run_id).name == key


def test_without_escaping_sns_would_refuse_such_a_key(aws_stack: str) -> None:
    """The emulated rule is live: the raw key in an attribute is refused, the escaped one not."""
    key = unique_key("bell\x07.jpg")
    sns = client("sns")
    with sns_refuses_invalid_characters() as refusals:
        with pytest.raises(ClientError, match="InvalidParameterValue"):
            sns.publish(TopicArn=aws_stack, Message="x", MessageAttributes=attribute(key))
        sns.publish(TopicArn=aws_stack, Message="x", MessageAttributes=attribute(sns_text(key)))
    assert len(refusals) == 1
    assert sns_text("a\tb\nc\rd\u2028e\U0001f600") == "a\tb\nc\rd\u2028e\U0001f600"
    assert sns_text("x\x01y\x1bz\x7f\ufffe") == "x\\u0001y\\u001bz\x7f\\ufffe"


def attribute(value: str) -> dict[str, Any]:
    return {"imageId": {"DataType": "String", "StringValue": value}}
