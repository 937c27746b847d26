"""backfill: process every existing object under a prefix, in one flow run.

For buckets that predate the pipeline, or after a change of thumbnail sizes
(`force=True` redoes images already COMPLETED). Batches of images run concurrently on
Prefect's thread pool (`PREFECT_TASK_RUNNER_THREAD_POOL_MAX_WORKERS`); Pillow releases
the GIL while it decodes and resizes, so threads use every core.
"""

from __future__ import annotations

from collections import Counter

from prefect import flow, get_run_logger, task, unmapped
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner

from tasks.batch import Outcome, process_batch
from tasks.settings import get_settings
from tasks.source import list_sources


@flow(name="backfill", task_runner=ThreadPoolTaskRunner(), persist_result=False)
def backfill(
    prefix: str = "uploads/", bucket: str | None = None, batch_size: int = 25, force: bool = False
) -> dict[str, int]:
    """Process every object under s3://`bucket`/`prefix` (the uploads bucket by default)."""
    bucket = bucket or get_settings().uploads_bucket
    sources = list_sources(bucket, prefix)
    batches = [sources[i : i + batch_size] for i in range(0, len(sources), batch_size)]
    futures = process_batch.map(batches, run_id=unmapped(flow_run.get_id()), force=unmapped(force))
    outcomes = [outcome for batch in futures.result() for outcome in batch]
    return summarise(bucket, prefix, outcomes)


@task(name="summary", cache_policy=NO_CACHE, persist_result=False)
def summarise(bucket: str, prefix: str, outcomes: list[Outcome]) -> dict[str, int]:
    counts = dict(Counter(outcome.status for outcome in outcomes))
    get_run_logger().info("Backfill of s3://%s/%s: %s", bucket, prefix, counts)
    failed = [o.model_dump() for o in outcomes if o.status == "FAILED"]
    create_table_artifact(
        table=failed or [{"key": "-", "status": "no failures"}],
        key="backfill-failures",
        description=f"s3://{bucket}/{prefix}: {counts}",
    )
    return counts
