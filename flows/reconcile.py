"""reconcile-stuck-images: record FAILED for images whose run ended without recording it.

It finds PROCESSING items not updated for `older_than_minutes`, asks the Prefect server about
the run each one names, and when that run is over (or unknown to the server) marks the image
FAILED with the reason and publishes the failure notice. A run that may still touch the image
is left alone, and the conditional write never replaces anything but the very PROCESSING
state it found. It also records FAILED for the images without an item whose process-image
run crashed in the last `lost_within_hours`. (The cases: `image_pipeline/stuck.py`.)
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from prefect import flow

from image_pipeline.outcomes import Summary
from tasks.progress import Progress
from tasks.reconcile import (
    find_lost_images,
    find_stuck_images,
    judge_runs,
    settle_lost,
    settle_stuck,
)
from tasks.summary import publish_summary


@flow(name="reconcile-stuck-images", persist_result=False)
def reconcile_stuck_images(
    older_than_minutes: float = 10,
    key_prefix: str | None = None,
    dry_run: bool = False,
    limit: int = 1000,
    lost_within_hours: float = 24,
) -> Summary:
    """Mark FAILED the PROCESSING images not updated for `older_than_minutes` whose flow run
    is over (crashed, failed, cancelled, completed) or unknown to the server, and the
    images without an item whose run crashed in the last `lost_within_hours`; publish
    their failure notices. `key_prefix` narrows the images; `dry_run` only reports."""
    subject = f"Stuck or unrecorded images under {key_prefix or '(all keys)'!r}"
    stuck = find_stuck_images(int(time.time() - older_than_minutes * 60), key_prefix, limit)
    since = datetime.now(UTC) - timedelta(hours=lost_within_hours)
    lost = find_lost_images(since, key_prefix, limit)
    verdicts = judge_runs(stuck) if stuck else {}
    progress = Progress.start("reconcile-stuck-images", subject, len(stuck) + len(lost))
    outcomes = []
    for image in stuck:
        outcomes.append(settle_stuck(image, verdicts[image.flow_run_id], dry_run))
        progress.advance()
    for lost_image in lost:
        outcomes.append(settle_lost(lost_image, dry_run))
        progress.advance()
    summary = Summary(
        subject=subject,
        dry_run=dry_run,
        outcomes=[outcome for outcome in outcomes if outcome is not None],
    )
    publish_summary(summary, "reconcile-stuck-images")
    return summary
