"""The source step of a backfill: the objects under a prefix, as S3 lists them."""

from __future__ import annotations

from tasks.source import list_sources
from tests import images
from tests.tasks.conftest import MakeWork


def test_list_sources_names_each_object_with_its_version(work_for: MakeWork) -> None:
    source = work_for(images.png(), "a b+c.png").source
    prefix = source.key.rsplit("/", 1)[0] + "/"
    [listed] = list_sources.fn(source.bucket, prefix)
    assert (listed.key, listed.etag, listed.size) == (source.key, source.etag, source.size)
