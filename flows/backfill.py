"""backfill: process every existing object under a prefix, in one flow run.

For buckets that predate the pipeline, or after a change of thumbnail sizes
(`force=True` redoes images already COMPLETED). Batches of images run concurrently on
Prefect's thread pool (`PREFECT_TASK_RUNNER_THREAD_POOL_MAX_WORKERS`); Pillow releases
the GIL while it decodes and resizes, so threads use every core.
"""

from __future__ import annotations

from prefect import flow, unmapped
from prefect.futures import as_completed
from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner

from image_pipeline.outcomes import Summary
from image_pipeline.settings import get_settings
from tasks.batch import process_batch
from tasks.progress import Progress
from tasks.source import list_sources
from tasks.summary import publish_summary


@flow(name="backfill", task_runner=ThreadPoolTaskRunner(), persist_result=False)
def backfill(
    prefix: str = "uploads/", bucket: str | None = None, batch_size: int = 25, force: bool = False
) -> dict[str, int]:
    """Process every object under s3://`bucket`/`prefix` (the uploads bucket by default)."""
    bucket = bucket or get_settings().uploads_bucket
    subject = f"Backfill of s3://{bucket}/{prefix}"
    sources = list_sources(bucket, prefix)
    progress = Progress.start("backfill", subject, len(sources))
    batches = [sources[i : i + batch_size] for i in range(0, len(sources), batch_size)]
    futures = process_batch.map(batches, run_id=unmapped(flow_run.get_id()), force=unmapped(force))
    for done in as_completed(futures):
        progress.advance(len(done.result()))
    outcomes = [outcome for batch in futures.result() for outcome in batch]
    summary = Summary(subject=subject, outcomes=outcomes)
    publish_summary(summary, "backfill")
    return summary.counts()
