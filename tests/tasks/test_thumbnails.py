"""The thumbnails step stores every size while its run holds the claim, and only then."""

from __future__ import annotations

import pytest

from image_pipeline.errors import Superseded
from tasks.record import claim_record
from tasks.thumbnails import make_thumbnails
from tasks.validate import validate
from tests import images
from tests.tasks.conftest import MakeWork


def test_thumbnails_of_a_claimed_image(work_for: MakeWork) -> None:
    work = validate.fn(claim_record.fn(work_for(images.jpeg((800, 600)), "x.jpg")))
    done = make_thumbnails.fn(work)
    assert {(t.label, t.width, t.height) for t in done.thumbnails} == {
        ("100x100", 100, 75),
        ("640x480", 640, 480),
    }


def test_no_thumbnails_without_the_claim(work_for: MakeWork) -> None:
    work = validate.fn(work_for(images.jpeg((800, 600)), "x.jpg"))  # never claimed
    with pytest.raises(Superseded):
        make_thumbnails.fn(work)
