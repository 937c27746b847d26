"""prefect.yaml's two work pools, deployed for real, and the ECS job prefect-aws renders.

On a Prefect server of its own (its deployments' triggers must not reach the session's):

- with IMAGE_PIPELINE_WORK_POOL naming the process pool, `prefect deploy --all` puts every
  deployment there with the process pool's job variables, as `make up` does;
- `deployments.aws.worker.prepare` (what the worker's container does first) creates the
  `ecs` pool from prefect-aws's default base job template with the stack's defaults, and
  the same `prefect deploy --all` moves every deployment to it;
- for a flow run of `process-images` there, prefect-aws's own code renders the task
  definition and the run request: our image, command and resources, the stack's roles,
  cluster, subnets and logs, the pipeline's settings as the environment, and Prefect's
  auth string as a secret rather than in the clear.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings
from prefect.workers.process import ProcessJobConfiguration
from prefect_aws.workers.ecs_worker import ECSJobConfiguration, ECSWorker

from deployments.aws import worker
from deployments.local import processes
from deployments.local.template import load_template
from image_pipeline.settings import Settings

REPO = Path(__file__).resolve().parents[2]
COMPUTE = REPO / "deployments" / "aws" / "compute.yaml"
IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/image-pipeline@sha256:" + "ab" * 32
PROCESS_POOL = "image-pipeline"
AUTH = "auth-string-never-in-the-clear"
DEPLOYMENTS = {
    "backfill",
    "process-image",
    "process-images",
    "reconcile-stuck-images",
    "rerun-failed-images",
}

# What CloudFormation substitutes into the worker's IMAGE_PIPELINE_ECS_JOB_DEFAULTS.
STACK = {
    "Cluster": "image-pipeline-Cluster-abc",
    "Vpc": "vpc-0123",
    "PrivateSubnetA": "subnet-aaa",
    "PrivateSubnetB": "subnet-bbb",
    "WorkerSecurityGroup": "sg-0123",
    "FlowRunTaskRole.Arn": "arn:aws:iam::123456789012:role/flow-run",
    "RuntimeExecutionRole.Arn": "arn:aws:iam::123456789012:role/runtime-execution",
    "LogGroup": "/image-pipeline/image-pipeline",
    "UploadsBucketName": "uploads-123",
    "UploadsPrefix": "uploads/",
    "ThumbnailsBucketName": "thumbnails-123",
    "TableName": "ImageProcessingDb",
    "TopicArn": "arn:aws:sns:eu-west-1:123456789012:ImageProcessingNotifications",
    "AWS::Region": "eu-west-1",
    "PrefectAuthSecret": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:auth-AbCdEf",
    "PrefectCloudSecret": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:cloud-AbCdEf",
}


def job_defaults(mode: str) -> dict[str, Any]:
    """The worker's IMAGE_PIPELINE_ECS_JOB_DEFAULTS as the stack renders it in `mode`."""
    (container,) = load_template(COMPUTE)["Resources"]["WorkerTaskDefinition"]["Properties"][
        "ContainerDefinitions"
    ]
    [entry] = [
        e for e in container["Environment"] if e.get("Name") == "IMAGE_PIPELINE_ECS_JOB_DEFAULTS"
    ]
    text, variables = entry["Value"]["Fn::Sub"]
    condition, cloud, self_hosted = variables["PrefectSecret"]["Fn::If"]
    assert condition == "PrefectCloud"
    chosen = cloud if mode == "cloud" else self_hosted
    values = dict(STACK, PrefectSecret=_sub(chosen["Fn::Sub"], STACK))
    return json.loads(_sub(text, values))


def _sub(text: str, values: dict[str, str]) -> str:
    for name, value in values.items():
        text = text.replace("${" + name + "}", value)
    assert "${" not in text, text
    return text


@pytest.fixture(scope="module")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Prefect server on a free port, on SQLite in a temporary folder."""
    home = tmp_path_factory.mktemp("prefect")
    port = processes.free_port()
    env = {
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home}/prefect.db",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_UI_ENABLED": "false",
    }
    args = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1"]
    server = processes.start([*args, "--port", str(port)], log_path=home / "server.log", env=env)
    url = f"http://127.0.0.1:{port}/api"
    try:
        processes.wait_until(
            lambda: processes.http_ok(f"{url}/health"), timeout=120, what="the Prefect server"
        )
        yield url
    finally:
        processes.stop(server)


@pytest.fixture
def against(prefect_api: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    """Point this process (its settings) and the CLI it starts (the environment) at the
    module's server."""
    monkeypatch.setenv("PREFECT_API_URL", prefect_api)
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))
    monkeypatch.setenv("IMAGE_PIPELINE_HOME", str(REPO))
    monkeypatch.setenv("IMAGE_PIPELINE_IMAGE", IMAGE)
    # As on the stack's worker: the auth string is in its settings, so Prefect would pass
    # it to every flow run in the clear unless the job sends it as a secret.
    with temporary_settings({PREFECT_API_URL: prefect_api, PREFECT_API_AUTH_STRING: AUTH}):
        yield prefect_api


async def _deployments() -> dict[str, Any]:
    async with get_client() as client:
        found = await client.read_deployments()
    return {d.name: d for d in found if d.name in DEPLOYMENTS}


async def _automations(deployment_id: Any) -> list[str]:
    """The events that start runs of the deployment (its triggers' automations)."""
    async with get_client() as client:
        found = await client.read_resource_related_automations(
            f"prefect.deployment.{deployment_id}"
        )
    return sorted(event for automation in found for event in automation.trigger.expect)


def test_the_base_job_template_refuses_variables_it_does_not_have() -> None:
    with pytest.raises(ValueError, match="no job variables"):
        worker.base_job_template({"clusterr": "typo"})


def test_one_variable_moves_the_deployments_between_the_pools(against: str) -> None:
    # The local pool, as `make up` deploys it.
    worker._prefect("work-pool", "create", PROCESS_POOL, "--type", "process", "--overwrite")
    worker._prefect(
        "--no-prompt", "deploy", "--all", env={"IMAGE_PIPELINE_WORK_POOL": PROCESS_POOL}
    )
    local = asyncio.run(_deployments())
    assert set(local) == DEPLOYMENTS
    for deployment in local.values():
        assert deployment.work_pool_name == PROCESS_POOL
        assert deployment.job_variables["command"] == "python -m prefect.engine"
        assert deployment.job_variables["working_dir"] == str(REPO)

    render_a_process_run(local["process-images"])

    # The worker's start on ECS: the pool from the stack's defaults, then the same deploy.
    defaults = job_defaults("self-hosted")
    worker.prepare(Settings(ecs_job_defaults=json.dumps(defaults)))
    on_ecs = asyncio.run(_deployments())
    assert set(on_ecs) == DEPLOYMENTS
    for name, deployment in on_ecs.items():
        assert deployment.work_pool_name == worker.ECS_POOL
        assert deployment.id == local[name].id  # the same deployments, moved
        assert deployment.job_variables["image"] == IMAGE
    assert asyncio.run(_automations(on_ecs["process-images"].id)) == ["aws.s3.objects.created"]
    render_a_flow_run(on_ecs["process-images"], defaults)


def render_a_process_run(deployment: Any) -> None:
    """The process worker reads its own variables and ignores the ECS pool's."""

    async def configuration() -> ProcessJobConfiguration:
        async with get_client() as client:
            pool = await client.read_work_pool(PROCESS_POOL)
            return await ProcessJobConfiguration.from_template_and_values(
                pool.base_job_template, deployment.job_variables
            )

    config = asyncio.run(configuration())
    assert config.command == "python -m prefect.engine"
    assert config.working_dir == REPO
    assert not {"image", "cpu", "memory", "container_name"} & set(config.model_dump())


def render_a_flow_run(deployment: Any, defaults: dict[str, Any]) -> None:
    async def configuration() -> tuple[ECSJobConfiguration, Any]:
        async with get_client() as client:
            pool = await client.read_work_pool(worker.ECS_POOL)
            assert pool.type == "ecs"
            flow_run = await client.create_flow_run_from_deployment(
                deployment.id, parameters={"images": []}
            )
            flow = await client.read_flow(deployment.flow_id)
            config = await ECSJobConfiguration.from_template_and_values(
                pool.base_job_template, deployment.job_variables
            )
        config.prepare_for_flow_run(flow_run, deployment, flow)
        return config, flow_run

    config, flow_run = asyncio.run(configuration())
    ecs = ECSWorker(work_pool_name=worker.ECS_POOL)
    task_definition = ecs._prepare_task_definition(config, region="eu-west-1", flow_run=flow_run)

    (container,) = task_definition["containerDefinitions"]
    assert container["image"] == IMAGE
    assert container["name"] == "pipeline"
    assert (task_definition["cpu"], task_definition["memory"]) == ("1024", "2048")
    assert task_definition["requiresCompatibilities"] == ["FARGATE"]
    assert task_definition["executionRoleArn"] == STACK["RuntimeExecutionRole.Arn"]
    logs = container["logConfiguration"]["options"]
    assert logs["awslogs-group"] == STACK["LogGroup"]
    assert logs["awslogs-create-group"] == "false"  # the stack made it; no logs:CreateLogGroup
    assert container["secrets"] == [
        {"name": "PREFECT_API_AUTH_STRING", "valueFrom": STACK["PrefectAuthSecret"]}
    ]

    # The run request as the worker sends it. Without the VPC id, prefect-aws skips its
    # check of the subnets against EC2 (asserted on the configuration below instead).
    request = ecs._prepare_task_run_request(
        config.model_copy(update={"vpc_id": None}),
        task_definition,
        "arn:aws:ecs:eu-west-1:123456789012:task-definition/image-pipeline:1",
        True,
    )
    assert request["cluster"] == STACK["Cluster"]
    assert request["launchType"] == "FARGATE"
    assert request["overrides"]["taskRoleArn"] == STACK["FlowRunTaskRole.Arn"]
    (override,) = request["overrides"]["containerOverrides"]
    assert override["name"] == "pipeline"
    assert override["command"] == ["python", "-m", "prefect.engine"]
    environment = {item["name"]: item["value"] for item in override["environment"]}
    for name, value in defaults["env"].items():
        assert environment[name] == value, name
    assert environment["PREFECT__FLOW_RUN_ID"] == str(flow_run.id)
    assert environment["PREFECT_API_URL"] == os.environ["PREFECT_API_URL"]  # the worker's
    assert config.env.get("PREFECT_API_AUTH_STRING") is None  # a secret, above
    assert AUTH not in json.dumps(request) + json.dumps(task_definition)
    assert config.network_configuration == {
        "subnets": [STACK["PrivateSubnetA"], STACK["PrivateSubnetB"]],
        "securityGroups": [STACK["WorkerSecurityGroup"]],
        "assignPublicIp": "DISABLED",
    }
    assert config.vpc_id == STACK["Vpc"]


def test_prefect_cloud_keys_reach_flow_runs_as_a_secret() -> None:
    defaults = job_defaults("cloud")
    assert (
        defaults["prefect_api_key_secret_arn"] == f"{STACK['PrefectCloudSecret']}:PREFECT_API_KEY::"
    )
    assert "prefect_api_auth_string_secret_arn" not in defaults
    template = worker.base_job_template(defaults)
    assert template["variables"]["properties"]["env"]["default"] == defaults["env"]
