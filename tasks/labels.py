"""The labels step: Rekognition labels, or why there are none; never a hidden error."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from image_pipeline import labels
from image_pipeline.models import ImageWork
from tasks.policies import TRANSIENT_RETRIES


@task(name="labels", **TRANSIENT_RETRIES, cache_policy=NO_CACHE, persist_result=False)
def detect_labels(work: ImageWork) -> ImageWork:
    assert work.image is not None
    found = labels.detect_labels(work.source, work.image, work.thumbnails, work.fingerprint)
    return work.having(labels=found)
