"""The report step: the run's result at a glance, as a Markdown artifact in the Prefect UI."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from image_pipeline.report import render


@task(name="report", cache_policy=NO_CACHE, persist_result=False)
def publish_report(item: dict[str, Any]) -> None:
    create_markdown_artifact(markdown=render(item), description=f"Result for {item['ImageKey']}")
