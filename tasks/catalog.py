"""Finding images by lifecycle status: the first step of the rerun and reconcile flows."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from image_pipeline import catalog
from image_pipeline.catalog import Page
from tasks.policies import TRANSIENT_RETRIES


@task(name="find-images", **TRANSIENT_RETRIES, cache_policy=NO_CACHE, persist_result=False)
def find_images(
    status: str,
    *,
    limit: int,
    key_prefix: str | None = None,
    error_type: str | None = None,
    updated_after: int | None = None,
    updated_before: int | None = None,
) -> Page:
    """Every matching item up to `limit`, newest first; `next_cursor` is set when more match."""
    return catalog.find_images(
        status,
        limit=limit,
        key_prefix=key_prefix,
        error_type=error_type,
        updated_after=updated_after,
        updated_before=updated_before,
    )
