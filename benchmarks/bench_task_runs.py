"""What one task run costs the machine: the floor under the burst's images per second.

    python -m benchmarks.bench_task_runs [--task-runs 400]

Starts the local stack (its Prefect server on PostgreSQL, tuned as `make up` tunes it)
and runs one flow, in a process of its own with the stack's environment, that maps a
task doing nothing over `--task-runs` items on two threads, as `process-images` maps its
images, and again over a few items. It waits until the server has recorded every task
run, then divides the difference in the CPU the whole machine spent by the difference in
task runs. Each image of a burst is the one task run named by its key plus the
`tasks.pipeline` steps switched on, so this bounds the burst from
above whatever the image work costs: writes its section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from unittest import mock

from benchmarks import common
from benchmarks.bench_stack import until
from deployments.local import stack

FLOW_NAME = "task-run-floor"
FEW = 20


def child(count: int) -> None:
    """The flow run's side: the flow, in this process, against the stack's server."""
    from prefect import flow, task
    from prefect.cache_policies import NO_CACHE
    from prefect.task_runners import ThreadPoolTaskRunner

    @task(name="nothing", cache_policy=NO_CACHE, persist_result=False)
    def nothing(item: int) -> int:
        return item

    @flow(name=FLOW_NAME, task_runner=ThreadPoolTaskRunner(max_workers=2), persist_result=False)
    def floor(items: int) -> int:
        return len(nothing.map(list(range(items))).result())

    assert floor(count) == count


def completed_task_runs(local: stack.Stack) -> int:
    import httpx

    body = {"task_runs": {"state": {"type": {"any_": ["COMPLETED"]}}}}
    response = httpx.post(f"{local.prefect_url}/api/task_runs/count", json=body, timeout=30)
    response.raise_for_status()
    return int(response.json())


def _children_seconds() -> float:
    times = os.times()
    return times.children_user + times.children_system


def measure(local: stack.Stack, count: int) -> dict[str, float]:
    """CPU seconds of the flow of `count` task runs, until the server has them all."""
    parts = {"server": "deployments.prefect_server", "postgres": "postgres"}
    before = {name: common.processes_cpu_seconds(part) for name, part in parts.items()}
    target = completed_task_runs(local) + count
    busy, started, flow = common.machine_busy_seconds(), time.monotonic(), _children_seconds()
    subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_task_runs", "--child", str(count)],
        env={**os.environ, **local.env()},
        check=True,
    )
    flow = _children_seconds() - flow
    until(lambda: completed_task_runs(local) >= target, timeout=300, poll=0.5)
    result = {
        "wall": time.monotonic() - started,
        "machine": common.machine_busy_seconds() - busy,
        "flow": flow,
    }
    for name, part in parts.items():
        result[name] = common.processes_cpu_seconds(part) - before[name]
    return result


def image_task_runs(local: stack.Stack) -> int:
    """Task runs of one image on `local`: the one named by its key and each step that its
    configuration switches on (the others run as plain calls)."""
    from image_pipeline.settings import get_settings
    from tasks.pipeline import STEPS

    with mock.patch.dict(os.environ, local.env()):
        get_settings.cache_clear()
        try:
            return 1 + sum(step.switched_on() for step in STEPS)
        finally:
            get_settings.cache_clear()


def report(count: int, cpu: dict[str, float], wall: float, runs: int) -> str:
    per_run = {name: seconds / count * 1000 for name, seconds in cpu.items()}
    cores = common.usable_cores()
    rows = [
        [f"task runs (a flow of {count + FEW} minus one of {FEW})", str(count)],
        [f"time until the server recorded all {count + FEW}", f"{wall:.1f} s"],
        ["CPU a task run, whole machine", f"{per_run['machine']:.1f} ms"],
        ["of which the flow run's process", f"{per_run['flow']:.1f} ms"],
        ["of which the Prefect server", f"{per_run['server']:.1f} ms"],
        ["of which PostgreSQL", f"{per_run['postgres']:.1f} ms"],
    ]
    ceiling = cores / (runs * per_run["machine"] / 1000)
    return "\n".join(
        [
            common.markdown_table(["no-op task runs, 2 threads", "value"], rows),
            "",
            f"- An image of a burst is {runs} task runs on the local stack (the one named by "
            f"its key and the {runs - 1} steps its configuration switches on): at most "
            f"**{ceiling:.1f} images/s** on {cores} cores for its task runs alone, before "
            "any image work.",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--task-runs", type=int, default=400)
    parser.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child)
    local = stack.Stack.throwaway("bench-task-runs-")
    with stack.running(local, worker_limit=1):
        measure(local, FEW)  # the server's first queries
        few = measure(local, FEW)
        many = measure(local, args.task_runs)
    # The difference leaves out what a flow run costs whatever its task runs: a new
    # interpreter, its imports, the flow run's own states.
    cpu = {name: many[name] - few[name] for name in many}
    body = report(args.task_runs - FEW, cpu, many["wall"], image_task_runs(local))
    print(body)
    machine = "\n".join(common.machine_lines())
    common.write_section(common.BENCHMARKS_MD, "task-runs", f"{machine}\n\n{body}\n")


if __name__ == "__main__":
    main()
