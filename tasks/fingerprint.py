"""The fingerprint step: the perceptual hash, the pixel digest and `duplicate_of`."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from image_pipeline import duplicates
from image_pipeline.models import ImageWork
from tasks.policies import TRANSIENT_RETRIES


# Looks the digest up in DynamoDB, so transient AWS errors are retried.
@task(name="fingerprint", **TRANSIENT_RETRIES, cache_policy=NO_CACHE, persist_result=False)
def fingerprint(work: ImageWork) -> ImageWork:
    assert work.image is not None
    return work.having(fingerprint=duplicates.fingerprint(work.source, work.image))
