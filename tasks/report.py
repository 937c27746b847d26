"""The report step: every run's result at a glance, as a Markdown artifact in the Prefect UI."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from image_pipeline.errors import describe_error
from image_pipeline.report import render, render_failure, render_outcome


@task(name="report", cache_policy=NO_CACHE, persist_result=False)
def publish_report(item: dict[str, Any]) -> None:
    create_markdown_artifact(markdown=render(item), description=f"Result for {item['ImageKey']}")


@task(name="failure-report", cache_policy=NO_CACHE, persist_result=False)
def publish_failure_report(
    key: str, etag: str | None, error: BaseException, failed_step: str
) -> None:
    """Why the image failed and where; the sentence the item gets, never the raw error."""
    error_type, reason = describe_error(error)
    markdown = render_failure(
        key, etag, error_type=error_type, reason=reason, failed_step=failed_step
    )
    create_markdown_artifact(markdown=markdown, description=f"{key} failed: {error_type}")


@task(name="report", cache_policy=NO_CACHE, persist_result=False)
def publish_outcome_report(key: str, outcome: str, reason: str) -> None:
    create_markdown_artifact(
        markdown=render_outcome(key, outcome, reason), description=f"{key}: {outcome}"
    )
