"""`make up`: the whole local stack on 127.0.0.1, the sample images through it.

Starts MiniStack, the Prefect server, a worker and the API; provisions the AWS
resources and deploys the flows; uploads the sample images to S3 exactly as a user
would, waits until each has its final status, prints a table and the URLs, and keeps
running until Ctrl-C (or `make down`), which stops everything cleanly.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import sys
from pathlib import Path
from urllib.parse import quote

import httpx

from deployments.local import processes, stack
from deployments.local.samples import samples
from image_pipeline import classifier
from image_pipeline.settings import get_settings

SAMPLE_PREFIX = "uploads/samples/"
FINAL = ("COMPLETED", "FAILED")


def main() -> int:
    settings = get_settings()
    state = (processes.REPO / settings.state_dir).resolve()
    ports = stack.Ports(
        settings.ministack_port,
        settings.prefect_port,
        settings.api_port,
        settings.worker_port,
        settings.postgres_port,
    )
    local = stack.Stack(
        ports=ports,
        state=state,
        api_key=stack.api_key(state),
        operator_key=stack.operator_key(state),
    )
    pid_file = state / "up.pid"
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        print(
            "Starting MiniStack, PostgreSQL, Prefect server, worker and API (logs in "
            f"{local.log('').parent}) ...",
            flush=True,
        )
        os.environ.update(local.env())  # for the uploads this process makes
        get_settings.cache_clear()
        # Convert the local labels' model now, not in the first flow runs (about 2 s).
        print(f"Local labels model: {classifier.prepare()}", flush=True)
        with stack.running(local, worker_limit=settings.worker_limit, persist=True):
            pid_file.write_text(str(os.getpid()))
            rows = upload_samples(local)
            print_table(rows)
            print_urls(local)
            with contextlib.suppress(KeyboardInterrupt):
                signal.pause()
            print("\nStopping ...", flush=True)
    except processes.PortInUse as exc:
        print(f"make up: {exc}", file=sys.stderr)
        return 1
    finally:
        pid_file.unlink(missing_ok=True)
    return 0


def upload_samples(local: stack.Stack) -> list[tuple[str, str, str, str]]:
    from image_pipeline.aws import client

    bucket = get_settings().uploads_bucket
    keys = []
    for name, data in samples().items():
        key = SAMPLE_PREFIX + name
        client("s3").put_object(Bucket=bucket, Key=key, Body=data)
        keys.append(key)
    print(
        f"Uploaded {len(keys)} sample images to s3://{bucket}/{SAMPLE_PREFIX}; "
        "waiting for their final status ...",
        flush=True,
    )
    return [summarise(key, wait_for_final(local, key)) for key in keys]


def wait_for_final(local: stack.Stack, key: str, timeout: float = 120) -> dict:
    """Ask the status API until the image is COMPLETED or FAILED."""
    url = f"{local.api_url}/images/{quote(key, safe='/')}/status"
    item: dict = {}

    def final() -> bool:
        response = httpx.get(url, headers=local.operator_headers, timeout=5)
        item.update(response.json() if response.status_code == 200 else {})
        return item.get("overall_processing_status") in FINAL

    try:
        processes.wait_until(final, timeout=timeout, what=f"the final status of {key}")
    except TimeoutError as exc:
        return {"overall_processing_status": "TIMED OUT", "error_message": str(exc)}
    return item


def summarise(key: str, item: dict) -> tuple[str, str, str, str]:
    status = item.get("overall_processing_status", "MISSING")
    thumbnails = ", ".join(sorted(item.get("thumbnails", {}))) or "-"
    if status != "COMPLETED":
        detail = f"{item.get('error_type', '')}: {item.get('error_message', '')}"
    else:
        labels = item.get("extracted_metadata", {}).get("rekognition_labels", [])
        status_of_labels = item.get("labels_status", "").lower()
        detail = ", ".join(label["Name"] for label in labels) or (
            "no label above the minimum confidence"
            if status_of_labels == "completed"
            else f"labels {status_of_labels}"
        )
    return key, status, thumbnails, detail[:72]


def print_table(rows: list[tuple[str, str, str, str]]) -> None:
    header = ("key", "status", "thumbnails", "labels or reason")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def print_urls(local: stack.Stack) -> None:
    bucket = get_settings().uploads_bucket
    key_file = Path(local.state) / "webhook-api-key"
    operator_file = Path(local.state) / stack.OPERATOR_KEY_FILE
    bearer = f'-H "Authorization: Bearer $(cat {shlex.quote(str(operator_file))})"'
    print(
        f"""
Prefect UI:     {local.prefect_url}
Status API:     {local.api_url}/docs
AWS emulator:   {local.ministack_url}   (AWS credentials: test / test)
Webhook key:    in {key_file} (x-api-key; admits S3 events only)
Operator key:   in {operator_file} (Authorization: Bearer; lists, reads, reprocesses)
Upload more:    export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
                aws s3 cp photo.jpg s3://{bucket}/uploads/photo.jpg \\
                  --endpoint-url {local.ministack_url}
Its status:     curl {local.api_url}/images/uploads/photo.jpg/status
Failures:       curl {bearer} \\
                  '{local.api_url}/images?status=FAILED'
Reprocess:      curl -X POST {bearer} \\
                  {local.api_url}/images/uploads/photo.jpg/reprocess

Running. Press Ctrl-C (or run `make down`) to stop.""",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
