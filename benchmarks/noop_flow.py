"""A flow that does nothing, on the same trigger as process-images: Prefect's own floor."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.runtime import flow_run


def first_key() -> str:
    """Named like process-images names a batch of one: by its key."""
    return str(flow_run.parameters["images"][0]["key"])


@flow(name="noop-image", flow_run_name=first_key, persist_result=False)
async def noop_image(images: list[dict[str, Any]]) -> None:
    return None


@flow(name="noop-image-sync", flow_run_name=first_key, persist_result=False)
def noop_image_sync(images: list[dict[str, Any]]) -> None:
    return None
