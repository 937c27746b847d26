"""The declared steps: their order, their names and their retry policies."""

from __future__ import annotations

from prefect.cache_policies import NO_CACHE

from image_pipeline.errors import ImageRejected
from tasks.pipeline import STEPS, failure_fields
from tasks.policies import retry_transient

# The original state machine's order, with the claim before and the store after,
# moderation before the thumbnails it may quarantine, and the metadata (whose fingerprint
# `labels` reads) after the thumbnails.
ORDER = [
    "claim-record",
    "validate",
    "moderation",
    "thumbnails",
    "metadata",
    "labels",
    "store",
]


def test_the_steps_are_the_state_machine_in_order() -> None:
    assert [step.name for step in STEPS] == ORDER


def test_every_step_keeps_images_out_of_caches_and_results() -> None:
    for step in STEPS:
        assert step.task.cache_policy is NO_CACHE, step.name
        assert step.task.persist_result is False, step.name


def test_every_step_retries_transient_errors_with_backoff() -> None:
    # Each talks to AWS; metadata too, whose fingerprint looks its digest up in DynamoDB.
    for step in STEPS:
        assert step.task.retries == 4, step.name
        assert step.task.retry_delay_seconds == [1, 2, 4, 8], step.name
        assert step.task.retry_jitter_factor == 0.5, step.name
        assert step.task.retry_condition_fn is retry_transient, step.name


def test_only_a_rejection_by_validate_marks_the_image_invalid() -> None:
    rejected = ImageRejected("NotAnImage", "text")
    assert failure_fields("validate", rejected) == {"validation_status": "INVALID"}
    assert failure_fields("validate", OSError("S3 down")) == {}
    assert failure_fields("thumbnails", rejected) == {}
    assert failure_fields("flow", None) == {}
