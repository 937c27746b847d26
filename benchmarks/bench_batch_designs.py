"""What Prefect's orchestration costs per image, for the candidate designs of a burst.

    python -m benchmarks.bench_batch_designs [--images 40] [--rounds 2]

Every design runs the same steps (`tasks.pipeline.STEPS`) on the same 2 MP JPEGs, in this
process, against MiniStack and a temporary Prefect server on free ports. A flow run's
interpreter start (about 1.3 s of CPU, BENCHMARKS.md) is left out: it is paid once per run,
so what decides a design at scale is what each image costs inside a run. CPU is counted
for this process and every process it started (the Prefect server, MiniStack).

Designs:
- `flow run per image`: `process-image` as today, each image its own flow run.
- `subflow per image`: one batch flow run; each image a `process-image` subflow run
  (its own page in the UI, its own hooks and notice).
- `task per image, steps as tasks`: one batch flow run; each image a task run named by
  its key, whose steps are nested task runs.
- `task per image, steps inline`: each image a task run named by its key that walks the
  steps as plain functions (their progress in that task run's log).
- `backfill batches (floor)`: 25 images per task run, as `backfill` does.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks import common
from benchmarks.bench_stack import photos
from image_pipeline.models import ImageWork, SourceObject

DESIGNS = (
    "flow run per image",
    "subflow per image",
    "task per image, steps as tasks",
    "task per image, steps inline",
    "backfill batches (floor)",
)


def tree_cpu_seconds(pid: int | None = None) -> float:
    """CPU time (user + system) of a process and all its descendants, from /proc."""
    pid = pid or os.getpid()
    ticks = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    times: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        child, parent = int(entry.name), int(fields[1])
        children.setdefault(parent, []).append(child)
        times[child] = (int(fields[11]) + int(fields[12])) / ticks
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        total += times.get(current, 0.0)
        todo += children.get(current, [])
    return total


@contextmanager
def environment() -> Iterator[None]:
    """MiniStack and a temporary Prefect server on free ports, the pipeline pointed at them."""
    from prefect.testing.utilities import prefect_test_harness

    from deployments.local import processes
    from deployments.local.provision import provision
    from image_pipeline import aws
    from image_pipeline.settings import get_settings

    logs = Path(tempfile.mkdtemp(prefix="bench-designs-"))
    with processes.ministack(processes.free_port(), log_path=logs / "ministack.log") as url:
        os.environ.update(
            IMAGE_PIPELINE_AWS_ENDPOINT_URL=url,
            AWS_ACCESS_KEY_ID="test",
            AWS_SECRET_ACCESS_KEY="test",
            AWS_DEFAULT_REGION="us-east-1",
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PREFECT_LOGGING_LEVEL="WARNING",
        )
        get_settings.cache_clear()
        aws.forget_clients()
        provision()
        with prefect_test_harness(server_startup_timeout=120):
            yield


def upload(count: int) -> list[SourceObject]:
    from image_pipeline.aws import client
    from image_pipeline.settings import get_settings
    from image_pipeline.sources import list_sources

    bucket, prefix = get_settings().uploads_bucket, f"uploads/designs-{uuid.uuid4().hex[:8]}/"
    for i, data in enumerate(photos(count)):
        client("s3").put_object(Bucket=bucket, Key=f"{prefix}{i:04d}.jpg", Body=data)
    return list_sources(bucket, prefix)


def designs() -> dict[str, Callable[[list[SourceObject]], Any]]:
    from prefect import flow, task, unmapped
    from prefect.cache_policies import NO_CACHE
    from prefect.runtime import flow_run
    from prefect.task_runners import ThreadPoolTaskRunner

    from flows.process_image import process_image
    from tasks.batch import process_batch
    from tasks.pipeline import STEPS, is_done

    def walk(work: ImageWork, inline: bool) -> ImageWork:
        for step in STEPS:
            work = step.run(work, inline=inline)
            if is_done(work):
                break
        return work

    @task(task_run_name="{source.key}", cache_policy=NO_CACHE, persist_result=False)
    def image_with_step_tasks(source: SourceObject, run_id: str) -> None:
        walk(ImageWork(source=source, run_id=run_id), inline=False)

    @task(task_run_name="{source.key}", cache_policy=NO_CACHE, persist_result=False)
    def image_inline(source: SourceObject, run_id: str) -> None:
        walk(ImageWork(source=source, run_id=run_id), inline=True)

    @flow(persist_result=False)
    async def subflows(sources: list[SourceObject]) -> None:
        for source in sources:
            await process_image(source.bucket, source.key, source.etag)

    runner = ThreadPoolTaskRunner(max_workers=4)

    @flow(task_runner=runner, persist_result=False)
    def tasks_with_step_tasks(sources: list[SourceObject]) -> None:
        image_with_step_tasks.map(sources, unmapped(flow_run.get_id())).result()

    @flow(task_runner=runner, persist_result=False)
    def tasks_inline(sources: list[SourceObject]) -> None:
        image_inline.map(sources, unmapped(flow_run.get_id())).result()

    @flow(task_runner=runner, persist_result=False)
    def backfill_batches(sources: list[SourceObject]) -> None:
        batches = [sources[i : i + 25] for i in range(0, len(sources), 25)]
        process_batch.map(batches, run_id=unmapped(flow_run.get_id())).result()

    def per_image_runs(sources: list[SourceObject]) -> None:
        for source in sources:
            asyncio.run(process_image(source.bucket, source.key, source.etag))

    return dict(
        zip(
            DESIGNS,
            (
                per_image_runs,
                lambda s: asyncio.run(subflows(s)),
                tasks_with_step_tasks,
                tasks_inline,
                backfill_batches,
            ),
            strict=True,
        )
    )


def measure(images: int, rounds: int) -> dict[str, list[tuple[float, float]]]:
    """(wall seconds, CPU seconds) per image, per design, per round."""
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in DESIGNS}
    with environment():
        candidates = designs()
        candidates["backfill batches (floor)"](upload(4))  # warm clients and the server
        for _ in range(rounds):
            for name, run in candidates.items():
                sources = upload(images)
                wall, cpu = time.perf_counter(), tree_cpu_seconds()
                run(sources)
                wall, cpu = time.perf_counter() - wall, tree_cpu_seconds() - cpu
                results[name].append((wall / images, cpu / images))
                print(f"{name}: {images / wall:.1f} images/s, {1000 * cpu / images:.0f} ms CPU")
    return results


def report(results: dict[str, list[tuple[float, float]]], images: int) -> str:
    lines = [
        "| design | images/s (in one run) | CPU per image, all processes | |",
        "|---|--:|--:|---|",
    ]
    for name, samples in results.items():
        wall = statistics.median(s[0] for s in samples)
        cpu = statistics.median(s[1] for s in samples)
        lines.append(
            f"| {name} | {1 / wall:.1f} | {1000 * cpu:.0f} ms | {2 / cpu:.1f}/s on 2 cores |"
        )
    return "\n".join(lines) + f"\n\n{images} 2 MP JPEGs a round, median of the rounds.\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    body = report(measure(args.images, args.rounds), args.images)
    machine = "\n".join(common.machine_lines())
    common.write_section(common.BENCHMARKS_MD, "batch-designs", f"{machine}\n\n{body}")
    print(body)


if __name__ == "__main__":
    main()
