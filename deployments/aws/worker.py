"""The Prefect worker's start on ECS: the work pool, the deployments, then the worker.

The worker's service (`deployments/aws/compute.yaml`) runs `python -m deployments.aws.worker`
in the pipeline's image. It

1. creates or updates the ECS work pool `image-pipeline-ecs` with prefect-aws's default base
   job template, whose variable defaults are replaced by the stack's
   (`IMAGE_PIPELINE_ECS_JOB_DEFAULTS`: cluster, subnets, roles, logs, the flow runs'
   pipeline settings) — `base_job_template()`;
2. deploys every deployment of `prefect.yaml` to that pool (`IMAGE_PIPELINE_WORK_POOL`),
   with the image it runs in (`IMAGE_PIPELINE_IMAGE`, set by the stack);
3. becomes `prefect worker start` for that pool, with its health check on port 8080.

Steps 1 and 2 are upserts, so every replica and every restart may run them.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from image_pipeline.settings import Settings, get_settings

ECS_POOL = "image-pipeline-ecs"
REPO = Path(__file__).resolve().parents[2]


def default_base_job_template() -> dict[str, Any]:
    """prefect-aws's own base job template of the `ecs` worker type."""
    # Imported here: prefect_aws brings aiobotocore and its ECS worker, which nothing else
    # of ours needs at import time (see docs/design.md, "Latency").
    from prefect_aws.workers.ecs_worker import ECSWorker

    return copy.deepcopy(ECSWorker.get_default_base_job_template())


def base_job_template(defaults: Mapping[str, Any]) -> dict[str, Any]:
    """prefect-aws's template with our defaults for its variables; unknown names are refused."""
    template = default_base_job_template()
    properties = template["variables"]["properties"]
    unknown = sorted(set(defaults) - set(properties))
    if unknown:
        raise ValueError(f"the ecs work pool has no job variables {unknown}")
    for name, value in defaults.items():
        properties[name]["default"] = value
    return template


def _prefect(*args: str, env: Mapping[str, str] | None = None) -> None:
    command = [sys.executable, "-m", "prefect", *args]
    subprocess.run(command, cwd=REPO, env={**os.environ, **(env or {})}, check=True)


def prepare(settings: Settings) -> None:
    """Create or update the ECS work pool, then deploy prefect.yaml's deployments to it."""
    template = base_job_template(settings.ecs_job_defaults)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as file:
        json.dump(template, file)
    try:
        _prefect(
            "work-pool", "create", ECS_POOL, "--type", "ecs", "--overwrite",
            "--base-job-template", file.name,
        )  # fmt: skip
    finally:
        os.unlink(file.name)
    _prefect("--no-prompt", "deploy", "--all", env={"IMAGE_PIPELINE_WORK_POOL": ECS_POOL})


def main() -> None:
    settings = get_settings()
    prepare(settings)
    worker = ["prefect", "worker", "start", "--pool", ECS_POOL, "--type", "ecs"]
    os.execvp("prefect", [*worker, "--with-healthcheck", "--limit", str(settings.worker_limit)])


if __name__ == "__main__":
    main()
