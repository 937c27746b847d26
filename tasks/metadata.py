"""The metadata step: what the image is. The original's Pillow properties, animation and
EXIF essentials, and its fingerprint: the perceptual hash, the pixel digest and
`duplicate_of`."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from image_pipeline import duplicates
from image_pipeline.metadata import describe
from image_pipeline.models import ImageWork
from tasks.policies import TRANSIENT_RETRIES


# The fingerprint looks its digest up in DynamoDB, so transient AWS errors are retried; the
# rest reads pixels already in memory and is safe to run again. One task run, not two: a
# task run costs the worker and the server more CPU than the hash (docs/design.md).
@task(name="metadata", **TRANSIENT_RETRIES, cache_policy=NO_CACHE, persist_result=False)
def extract_metadata(work: ImageWork) -> ImageWork:
    assert work.image is not None
    return work.having(
        metadata=describe(work.source, work.image),
        fingerprint=duplicates.fingerprint(work.source, work.image),
    )
