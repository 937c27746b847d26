"""The metadata step: the original's Pillow properties, plus animation and EXIF essentials."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from image_pipeline.metadata import describe
from image_pipeline.models import ImageWork


# No network and nothing that can fail transiently, so no retries.
@task(name="metadata", cache_policy=NO_CACHE, persist_result=False)
def extract_metadata(work: ImageWork) -> ImageWork:
    assert work.image is not None
    return work.having(metadata=describe(work.source, work.image))
