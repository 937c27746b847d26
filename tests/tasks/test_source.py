"""The source steps: the version a run is about, and the objects under a prefix."""

from __future__ import annotations

import pytest

from image_pipeline.errors import Superseded
from tasks.source import describe_source, list_sources
from tests import images
from tests.tasks.conftest import MakeWork


def test_describe_source_and_list_sources(work_for: MakeWork) -> None:
    source = work_for(images.png(), "a b+c.png").source
    assert describe_source.fn(source.bucket, source.key, source.etag) == source
    prefix = source.key.rsplit("/", 1)[0] + "/"
    assert [s.key for s in list_sources.fn(source.bucket, prefix)] == [source.key]


def test_another_version_is_superseded(work_for: MakeWork) -> None:
    source = work_for(images.png(), "a.png").source
    with pytest.raises(Superseded):
        describe_source.fn(source.bucket, source.key, "0" * 32)
