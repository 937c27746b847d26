"""rerun-failed-images: start process-image again for the images whose processing failed.

Finds the FAILED items through the table's status index (by key prefix, error type and
failure time), leaves out every image that a process-image run is already handling or
that an earlier rerun already started for the same failure, and starts one process-image
run per remaining image, for the object as it is now. With `dry_run` it only reports.
What it did is the flow's result, its log and a table artifact.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from prefect import flow
from pydantic import Field

from image_pipeline.catalog import epoch_seconds
from image_pipeline.records import FAILED
from image_pipeline.reruns import Failure, RerunSummary, summarize
from tasks.catalog import find_images
from tasks.progress import Progress
from tasks.reruns import find_runs_in_the_way, start_reruns
from tasks.summary import publish_summary


@flow(name="rerun-failed-images", persist_result=False)
def rerun_failed_images(
    key_prefix: str | None = None,
    error_type: str | None = None,
    failed_after: datetime | None = None,
    failed_before: datetime | None = None,
    dry_run: bool = False,
    limit: Annotated[int, Field(ge=1)] = 1000,
) -> RerunSummary:
    """Start process-image again for FAILED images, newest failure first, at most `limit`.

    `key_prefix` and `error_type` narrow the images (e.g. `uploads/2024/`, `CorruptImage`);
    `failed_after` and `failed_before` bound when the failure was recorded, to the second,
    both inclusive (a time without zone is UTC). An image that a process-image run is
    already handling, or that an earlier rerun already started for the same failure, is
    skipped and reported. `dry_run` reports what would be started and starts nothing.
    """
    found = find_images(
        FAILED,
        limit=limit,
        key_prefix=key_prefix,
        error_type=error_type,
        updated_after=epoch_seconds(failed_after),
        updated_before=epoch_seconds(failed_before),
    )
    subject = f"Failed images under {key_prefix or '(all keys)'!r}"
    images = [Failure.from_item(item) for item in found.items]
    progress = Progress.start("rerun-failed-images", subject, len(images))
    in_the_way = find_runs_in_the_way(images) if images else {}
    progress.advance(len(in_the_way))  # skipped: done
    to_start = [image for image in images if image.key not in in_the_way]
    if dry_run:
        started = None
        progress.advance(len(to_start))  # reported, not started
    else:
        started = start_reruns(to_start, progress) if to_start else []
    summary = summarize(
        images, in_the_way, started, subject=subject, more_match=found.next_cursor is not None
    )
    publish_summary(summary, "rerun-failed-images")
    return summary
