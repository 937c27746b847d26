"""`make up`: the whole local stack on 127.0.0.1, the sample images through it.

Starts MiniStack, the Prefect server, a worker and the API; provisions the AWS
resources and deploys the flows, a line at the start and end of each phase; uploads the
sample images to S3 exactly as a user would (only those not already there and
processed: a restart is quiet), waits until each has the final status of its version,
prints a table and the URLs, and keeps running until Ctrl-C (or `make down`), which
stops everything cleanly.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shlex
import signal
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from botocore.exceptions import ClientError

from deployments.local import processes, stack
from deployments.local.phase import phase, say
from deployments.local.samples import samples
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
        say(f"Starting the local stack (state in {state}, logs in {local.log('').parent})")
        os.environ.update(local.env())  # for the uploads this process makes
        get_settings.cache_clear()
        with stack.running(local, worker_limit=settings.worker_limit, persist=True, say=say):
            pid_file.write_text(str(os.getpid()))
            from image_pipeline.aws import client

            with phase("process the sample images"):
                rows = upload_samples(local, client("s3"), get_settings().uploads_bucket)
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


Row = tuple[str, str, str, str, str]


def content_etag(data: bytes) -> str:
    """The ETag S3 gives a single-part upload of `data`: its MD5, in hex."""
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def upload_samples(
    local: stack.Stack,
    s3: Any,
    bucket: str,
    prefix: str = SAMPLE_PREFIX,
    files: dict[str, bytes] | None = None,
) -> list[Row]:
    """Upload the samples that are not already there and processed; one row per sample.

    A restart is quiet: a sample whose object has the same content (ETag) and whose record
    of that version is final is not uploaded again, so it starts no run and sends no
    notice. The rows of the uploaded ones are the results of this start's runs: the wait
    is for a final record of the very version uploaded, never an older record.
    """
    files = samples() if files is None else files
    uploaded: dict[str, str] = {}
    kept: dict[str, dict] = {}
    for name, data in files.items():
        key = prefix + name
        etag = content_etag(data)
        item = _status(local, key)
        if _stored_etag(s3, bucket, key) == etag and _is_final(item, etag):
            kept[key] = item
            continue
        response = s3.put_object(Bucket=bucket, Key=key, Body=data)
        uploaded[key] = response["ETag"].strip('"')
    say(
        f"Uploaded {len(uploaded)} sample image(s) to s3://{bucket}/{prefix}"
        + (f"; {len(kept)} unchanged and already processed, not uploaded again" if kept else "")
        + ("; waiting for their final status ..." if uploaded else ".")
    )
    rows = []
    for name in files:
        key = prefix + name
        if key in uploaded:
            rows.append(summarise(key, wait_for_final(local, key, uploaded[key]), "this start"))
        else:
            rows.append(summarise(key, kept[key], "earlier"))
    return rows


def _stored_etag(s3: Any, bucket: str, key: str) -> str | None:
    try:
        return s3.head_object(Bucket=bucket, Key=key)["ETag"].strip('"')
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise


def _status(local: stack.Stack, key: str) -> dict:
    url = f"{local.api_url}/images/{quote(key, safe='/')}/status"
    response = httpx.get(url, headers=local.operator_headers, timeout=5)
    if response.status_code == 404:
        return {}
    response.raise_for_status()
    return response.json()


def _is_final(item: dict, etag: str) -> bool:
    """The record is final and describes the version `etag` (not an older upload)."""
    return item.get("etag") == etag and item.get("overall_processing_status") in FINAL


def wait_for_final(local: stack.Stack, key: str, etag: str, timeout: float = 120) -> dict:
    """Ask the status API until the record of version `etag` is COMPLETED or FAILED."""
    item: dict = {}

    def final() -> bool:
        item.clear()
        item.update(_status(local, key))
        return _is_final(item, etag)

    try:
        processes.wait_until(final, timeout=timeout, what=f"the final status of {key}")
    except TimeoutError as exc:
        return {"overall_processing_status": "TIMED OUT", "error_message": str(exc)}
    return item


def summarise(key: str, item: dict, run: str) -> Row:
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
    return key, status, run, thumbnails, detail[:72]


def print_table(rows: list[Row]) -> None:
    header = ("key", "status", "processed", "thumbnails", "labels or reason")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    if any(row[2] == "earlier" for row in rows):
        print("(processed earlier: unchanged since a previous `make up`, so not uploaded again)")


# The AWS CLI v1 reads the region only from AWS_DEFAULT_REGION; v2 also from AWS_REGION.
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


def aws_hints(local: stack.Stack) -> list[str]:
    """Shell lines that work with the AWS CLI v1 and v2 alike, pasted as they are."""
    settings = get_settings()
    aws = f"aws --endpoint-url {local.ministack_url}"
    return [
        "export " + " ".join(f"{name}={value}" for name, value in AWS_ENV.items()),
        f"{aws} s3 cp photo.jpg s3://{settings.uploads_bucket}/uploads/photo.jpg",
        f"{aws} s3 ls s3://{settings.thumbnails_bucket}/thumbnails/uploads/",
        f"{aws} dynamodb list-tables",
    ]


def print_urls(local: stack.Stack) -> None:
    key_file = Path(local.state) / "webhook-api-key"
    operator_file = Path(local.state) / stack.OPERATOR_KEY_FILE
    bearer = f'-H "Authorization: Bearer $(cat {shlex.quote(str(operator_file))})"'
    first, *commands = aws_hints(local)
    more = "\n".join(f"                {line}" for line in commands)
    print(
        f"""
Prefect UI:     {local.prefect_url}
Status API:     {local.api_url}/docs
AWS emulator:   {local.ministack_url}   (AWS credentials: test / test)
Webhook key:    in {key_file} (x-api-key; admits S3 events only)
Operator key:   in {operator_file} (Authorization: Bearer; lists, reads, reprocesses)
Upload more:    {first}
{more}
Its status:     curl {local.api_url}/images/uploads/photo.jpg/status
Failures:       curl {bearer} \\
                  '{local.api_url}/images?status=FAILED'
Reprocess:      curl -X POST {bearer} \\
                  {local.api_url}/images/uploads/photo.jpg/reprocess
Local state:    {local.state} (`make reset` removes it all)

Running. Press Ctrl-C (or run `make down`) to stop.""",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
