"""The validate step: one download and one decode of the upload, judged by content."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from image_pipeline import validation
from image_pipeline.models import ImageWork
from tasks.policies import TRANSIENT_RETRIES, rejections_as_states


# Pixels never become a cache key or a stored result (hashing megabytes costs tens of ms a
# call); idempotency comes from the record. A bad upload ends the task run Failed with its
# reason, returned rather than raised, so the run's log shows no traceback for it.
@task(name="validate", **TRANSIENT_RETRIES, cache_policy=NO_CACHE, persist_result=False)
@rejections_as_states
def validate(work: ImageWork) -> ImageWork:
    return work.having(image=validation.validate(work.source))
