"""The thumbnails step: render every configured size, store it in S3, and make the
placeholder from the smallest (pixels already in memory: a task run of its own would cost
the orchestration more than the hash)."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from image_pipeline import thumbnails
from image_pipeline.imaging.placeholder import placeholder
from image_pipeline.models import ImageWork
from tasks.policies import TRANSIENT_RETRIES


@task(name="thumbnails", **TRANSIENT_RETRIES, cache_policy=NO_CACHE, persist_result=False)
def make_thumbnails(work: ImageWork) -> ImageWork:
    assert work.image is not None
    # Runs after moderation, so a flagged image's thumbnails are never public, even briefly.
    moderation = work.moderation
    made = thumbnails.make_and_keep_thumbnails(
        work.source,
        work.image,
        work.run_id,
        quarantined=moderation is not None and moderation.quarantined,
        withdraw_other=moderation is not None and moderation.status != "SKIPPED",
    )
    smallest = thumbnails.smallest([rendered for _, rendered in made])
    return work.having(
        thumbnails=tuple(stored for stored, _ in made), placeholder=placeholder(smallest.pixels)
    )
