"""The placeholder step: a ThumbHash and the dominant colour, from the smallest thumbnail."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from image_pipeline.imaging.placeholder import placeholder
from image_pipeline.models import ImageWork


# Pixels in memory and no network, so no retries.
@task(name="placeholder", cache_policy=NO_CACHE, persist_result=False)
def make_placeholder(work: ImageWork) -> ImageWork:
    assert work.smallest_thumbnail is not None
    return work.having(placeholder=placeholder(work.smallest_thumbnail))
