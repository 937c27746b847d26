"""Where a backfill starts: every object under a prefix."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from image_pipeline import sources
from image_pipeline.models import SourceObject
from tasks.policies import TRANSIENT_RETRIES


@task(name="list-sources", **TRANSIENT_RETRIES, cache_policy=NO_CACHE, persist_result=False)
def list_sources(bucket: str, prefix: str) -> list[SourceObject]:
    return sources.list_sources(bucket, prefix)
