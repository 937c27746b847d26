"""The validate step hands on the decoded image, and rejects by content."""

from __future__ import annotations

import pytest
from prefect.states import State

from image_pipeline.aws import client
from image_pipeline.errors import ImageRejected, Superseded
from tasks.policies import raise_rejection
from tasks.validate import validate
from tests import images
from tests.tasks.conftest import MakeWork


def test_validate_adds_the_decoded_image(work_for: MakeWork) -> None:
    work = validate.fn(work_for(images.gif(), "named.png"))
    assert work.image is not None and work.image.format == "GIF"  # content decides


def test_validate_rejects_what_is_no_image(work_for: MakeWork) -> None:
    # Returned as a Failed state, so Prefect logs a reason, not a traceback.
    state = validate.fn(work_for(b"hello", "text.jpg"))
    assert isinstance(state, State) and state.is_failed()
    assert state.message.startswith("NotAnImage: The file is not an image")
    assert "\n" not in state.message
    with pytest.raises(ImageRejected) as caught:
        raise_rejection(state)
    assert caught.value.error_type == "NotAnImage"


def test_validate_names_a_bmp_variant_it_cannot_read(work_for: MakeWork) -> None:
    data = images.bmp_variant(compression=4)  # BI_JPEG: a valid BMP wrapping a JPEG
    state = validate.fn(work_for(data, "scan.bmp"))
    assert isinstance(state, State) and state.is_failed()
    assert state.message == (
        "UnsupportedFormat: The file is a BMP in a variant that cannot be read "
        "(Unsupported BMP compression (4: JPEG inside BMP))."
    )


def test_other_errors_are_raised_as_before(work_for: MakeWork) -> None:
    work = work_for(images.png(), "gone.png")
    client("s3").delete_object(Bucket=work.source.bucket, Key=work.source.key)
    with pytest.raises(Superseded):  # the object went away: not a rejection
        validate.fn(work)
