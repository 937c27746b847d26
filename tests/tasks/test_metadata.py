"""The metadata step adds the original's Pillow properties to the work."""

from __future__ import annotations

from tasks.metadata import extract_metadata
from tasks.validate import validate
from tests import images
from tests.tasks.conftest import MakeWork


def test_metadata_describes_the_file_as_stored(work_for: MakeWork) -> None:
    work = extract_metadata.fn(validate.fn(work_for(images.png((64, 48)), "a.png")))
    assert work.metadata is not None
    assert (work.metadata["format"], work.metadata["width_pixels"]) == ("PNG", 64)
    assert work.metadata["filename"] == "a.png"
