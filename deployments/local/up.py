"""`make up`: the local stack on 127.0.0.1, the sample images through the pipeline.

Starts MiniStack and a Prefect server, provisions the resources, uploads the samples,
runs `process-image` for each (visible in the Prefect UI), prints the results, and
keeps everything running until Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from pathlib import Path

from deployments.local import processes
from deployments.local.samples import samples

SAMPLE_PREFIX = "uploads/samples/"


def main() -> int:
    # Settings are read lazily, so the stack's environment must be in place first.
    from tasks.settings import get_settings

    settings = get_settings()
    state = processes.REPO / settings.state_dir
    ministack_url = f"http://127.0.0.1:{settings.ministack_port}"
    prefect_url = f"http://127.0.0.1:{settings.prefect_port}"
    os.environ |= {
        "IMAGE_PIPELINE_AWS_ENDPOINT_URL": ministack_url,
        "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "test"),
        "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "test"),
        "PREFECT_API_URL": f"{prefect_url}/api",
        "PREFECT_HOME": str(state / "prefect"),
    }
    get_settings.cache_clear()
    try:
        with contextlib.ExitStack() as stack:
            stack.enter_context(
                processes.ministack(
                    settings.ministack_port,
                    log_path=state / "logs" / "ministack.log",
                    state_dir=state / "ministack",
                )
            )
            stack.enter_context(prefect_server(settings.prefect_port, state))
            run_samples()
            print_urls(prefect_url, ministack_url)
            wait_for_interrupt()
    except processes.PortInUse as exc:
        print(f"make up: {exc}", file=sys.stderr)
        return 1
    return 0


@contextlib.contextmanager
def prefect_server(port: int, state: Path):
    processes.check_port_free(port, "the Prefect server")
    process = processes.start(
        [
            sys.executable,
            "-m",
            "prefect",
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        log_path=state / "logs" / "prefect-server.log",
    )
    try:
        processes.wait_until(
            lambda: processes.http_ok(f"http://127.0.0.1:{port}/api/health"),
            timeout=120,
            what="the Prefect server",
        )
        yield
    finally:
        processes.stop(process)


def run_samples() -> None:
    from deployments.provision import provision
    from flows.process_image import process_image
    from tasks.aws import client
    from tasks.settings import get_settings

    provision()
    bucket = get_settings().uploads_bucket
    rows = []
    for name, data in samples().items():
        key = SAMPLE_PREFIX + name
        etag = client("s3").put_object(Bucket=bucket, Key=key, Body=data)["ETag"].strip('"')
        state = process_image(bucket, key, etag, return_state=True)
        from tasks.record import read_item

        rows.append(summarise(key, read_item(key) or {}, state.message or ""))
    print_table(rows)


def summarise(key: str, item: dict, message: str) -> tuple[str, str, str, str]:
    status = item.get("overall_processing_status", "MISSING")
    thumbnails = ", ".join(item.get("thumbnails", {})) or "-"
    if status == "FAILED":
        detail = f"{item.get('error_type')}: {item.get('error_message')}"
    else:
        labels = item.get("extracted_metadata", {}).get("rekognition_labels", [])
        detail = ", ".join(label["Name"] for label in labels) or (
            "labels: " + item.get("labels_status", message).lower()
        )
    return key, status, thumbnails, detail[:70]


def print_table(rows: list[tuple[str, str, str, str]]) -> None:
    header = ("key", "status", "thumbnails", "labels or reason")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))


def print_urls(prefect_url: str, ministack_url: str) -> None:
    from tasks.settings import get_settings

    bucket = get_settings().uploads_bucket
    print(
        f"""
Prefect UI:      {prefect_url}
AWS emulator:    {ministack_url}  (credentials: test / test)
Upload more:     aws s3 cp photo.jpg s3://{bucket}/uploads/photo.jpg --endpoint-url {ministack_url}

Running. Press Ctrl-C to stop.""",
        flush=True,
    )


def wait_for_interrupt() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with contextlib.suppress(KeyboardInterrupt):
        signal.pause()


if __name__ == "__main__":
    sys.exit(main())
