"""The moderation step: CLEAN or FLAGGED before any thumbnail is written, or why unknown."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from image_pipeline import moderation
from image_pipeline.models import ImageWork
from tasks.policies import TRANSIENT_RETRIES


@task(name="moderation", **TRANSIENT_RETRIES, cache_policy=NO_CACHE, persist_result=False)
def moderate(work: ImageWork) -> ImageWork:
    assert work.image is not None
    return work.having(moderation=moderation.moderate(work.source, work.image))
