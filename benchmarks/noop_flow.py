"""A flow that does nothing, on the same trigger as process-image: Prefect's own floor."""

from __future__ import annotations

from prefect import flow


@flow(name="noop-image", flow_run_name="{key}", persist_result=False)
async def noop_image(bucket: str, key: str, etag: str | None = None) -> None:
    return None


@flow(name="noop-image-sync", flow_run_name="{key}", persist_result=False)
def noop_image_sync(bucket: str, key: str, etag: str | None = None) -> None:
    return None
