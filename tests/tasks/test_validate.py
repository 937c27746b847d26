"""The validate step hands on the decoded image, and rejects by content."""

from __future__ import annotations

import pytest

from image_pipeline.errors import ImageRejected
from tasks.validate import validate
from tests import images
from tests.tasks.conftest import MakeWork


def test_validate_adds_the_decoded_image(work_for: MakeWork) -> None:
    work = validate.fn(work_for(images.gif(), "named.png"))
    assert work.image is not None and work.image.format == "GIF"  # content decides


def test_validate_rejects_what_is_no_image(work_for: MakeWork) -> None:
    with pytest.raises(ImageRejected) as caught:
        validate.fn(work_for(b"hello", "text.jpg"))
    assert caught.value.error_type == "NotAnImage"
