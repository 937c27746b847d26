"""The last step of every bulk flow: its outcomes as a table artifact and in its log."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from image_pipeline.outcomes import Summary
from image_pipeline.report import render_batch


@task(name="publish-summary", cache_policy=NO_CACHE, persist_result=False)
def publish_summary(summary: Summary, artifact_key: str) -> None:
    rows = [outcome.row() for outcome in summary.outcomes] or [{"key": "-", "action": "none"}]
    create_table_artifact(table=rows, key=artifact_key, description=summary.headline())
    get_run_logger().info(summary.report())


@task(name="batch-report", cache_policy=NO_CACHE, persist_result=False)
def publish_batch_report(summary: Summary) -> None:
    """A batch's images at a glance: each success's thumbnail inline, each failure's reason."""
    create_markdown_artifact(markdown=render_batch(summary), description=summary.headline())
