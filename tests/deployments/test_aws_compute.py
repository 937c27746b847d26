"""The compute template and the whole-system template (deployments/aws/compute.yaml, system.yaml).

- both pass cfn-lint (template.yaml's own test covers it);
- system.yaml nests template.yaml and compute.yaml, gives each every parameter it needs
  and only those it declares, and reads only outputs they have; the webhook URL the API
  destination calls is the API's own route behind the HTTPS listener, and is the output;
- the compute: ECS on Fargate, the API behind HTTPS with the certificate parameter, the
  worker, Prefect Cloud or a server on RDS in private subnets by a parameter, every
  container logging to the stack's log group, an optional email subscription;
- least privilege: the API's task role is the storage stack's read-only API policy and
  nothing else, the flow runs' is the worker policy, the Prefect worker may pass only
  the flow runs' roles and run tasks only in its cluster, each execution role reads only
  its own secrets;
- what MiniStack's CloudFormation accepts of it (all but the NAT gateway, its address and
  the ECS services; Prefect Cloud mode) deploys there beside the local storage stack, and
  the roles, task definitions, load balancer and secrets it made are the template's.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import cfn_yaml

from api.main import app
from deployments.local.cloudformation import deploy_stack, describe_stack
from deployments.local.stack import SERVER_TUNING
from deployments.local.template import STACK_NAME, references
from image_pipeline.aws import client
from tests.deployments.test_aws_template import _WRITE_VERBS

AWS_DIR = Path(__file__).resolve().parents[2] / "deployments" / "aws"
COMPUTE, SYSTEM, STORAGE = (
    AWS_DIR / name for name in ("compute.yaml", "system.yaml", "template.yaml")
)


@pytest.fixture(scope="module")
def compute() -> dict[str, Any]:
    return cfn_yaml.load(str(COMPUTE))


@pytest.fixture(scope="module")
def system() -> dict[str, Any]:
    return cfn_yaml.load(str(SYSTEM))


@pytest.fixture(scope="module")
def storage() -> dict[str, Any]:
    return cfn_yaml.load(str(STORAGE))


@pytest.mark.parametrize("path", [COMPUTE, SYSTEM], ids=lambda p: p.name)
def test_cfn_lint_passes(path: Path) -> None:
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    result = subprocess.run(
        [str(cfn_lint), "--", str(path)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


# --- The system: two nested stacks wired together --------------------------------------


def _required(template: dict[str, Any]) -> set[str]:
    return {name for name, spec in template["Parameters"].items() if "Default" not in spec}


def test_the_system_nests_both_templates_with_what_they_need(
    system: dict[str, Any], storage: dict[str, Any], compute: dict[str, Any]
) -> None:
    resources = system["Resources"]
    for logical_id, child in (("Storage", storage), ("Compute", compute)):
        props = resources[logical_id]["Properties"]
        assert resources[logical_id]["Type"] == "AWS::CloudFormation::Stack"
        assert (
            props["TemplateURL"]
            == {"Storage": "template.yaml", "Compute": "compute.yaml"}[logical_id]
        )
        given = set(props["Parameters"])
        assert _required(child) <= given <= set(child["Parameters"]), logical_id
    # Every output read from a child exists there.
    children = {"Storage": storage, "Compute": compute}
    for node in _walk(system):
        if isinstance(node, dict) and "Fn::GetAtt" in node:
            target, attribute = node["Fn::GetAtt"]
            if target in children:
                assert attribute.startswith("Outputs."), attribute
                assert attribute.removeprefix("Outputs.") in children[target]["Outputs"], attribute


def _walk(node: Any) -> Any:
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def test_the_webhook_url_is_the_apis_own_route(
    system: dict[str, Any], compute: dict[str, Any]
) -> None:
    webhook = {"Fn::Sub": "https://${DomainName}/events/s3"}
    # What the API destination calls (storage's WebhookUrl) is what the stack reports.
    storage_parameters = system["Resources"]["Storage"]["Properties"]["Parameters"]
    assert storage_parameters["WebhookUrl"] == webhook
    assert compute["Outputs"]["WebhookUrl"]["Value"] == webhook
    assert system["Outputs"]["WebhookUrl"]["Value"] == {
        "Fn::GetAtt": ["Compute", "Outputs.WebhookUrl"]
    }
    # Same DomainName on both sides, and the same key.
    compute_parameters = system["Resources"]["Compute"]["Properties"]["Parameters"]
    assert compute_parameters["DomainName"] == {"Ref": "DomainName"}
    assert storage_parameters["WebhookApiKey"] == compute_parameters["WebhookApiKey"]
    # The host's HTTPS listener forwards everything to the API's port, where the route is.
    resources = compute["Resources"]
    listener = resources["HttpsListener"]["Properties"]
    assert (listener["Protocol"], listener["Port"]) == ("HTTPS", 443)
    assert listener["Certificates"] == [{"CertificateArn": {"Ref": "CertificateArn"}}]
    assert listener["DefaultActions"] == [
        {"Type": "forward", "TargetGroupArn": {"Ref": "ApiTargetGroup"}}
    ]
    [binding] = resources["ApiService"]["Properties"]["LoadBalancers"]
    assert binding["TargetGroupArn"] == {"Ref": "ApiTargetGroup"}
    assert binding["ContainerPort"] == resources["ApiTargetGroup"]["Properties"]["Port"] == 8000
    routes = {
        (path, method.upper())
        for path, operations in app.openapi()["paths"].items()
        for method in operations
    }
    assert ("/events/s3", "POST") in routes
    assert resources["ApiTargetGroup"]["Properties"]["HealthCheckPath"] == "/healthz"
    assert ("/healthz", "GET") in routes
    # The status URL is the original API's route.
    assert system["Outputs"]["StatusUrl"]["Value"] == {
        "Fn::Sub": "https://${DomainName}/images/uploads"
    }
    assert any(path == "/images/uploads/{filename}/status" for path, _method in routes)


def test_an_email_address_is_subscribed_only_when_given(system: dict[str, Any]) -> None:
    assert system["Parameters"]["NotificationEmail"]["Default"] == ""
    subscription = system["Resources"]["NotificationSubscription"]
    assert subscription["Condition"] == "HasNotificationEmail"
    assert system["Conditions"]["HasNotificationEmail"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "NotificationEmail"}, ""]}]
    }
    assert subscription["Properties"] == {
        "TopicArn": {"Fn::GetAtt": ["Storage", "Outputs.TopicArn"]},
        "Protocol": "email",
        "Endpoint": {"Ref": "NotificationEmail"},
    }


# --- The compute ----------------------------------------------------------------------


def _of_type(template: dict[str, Any], kind: str) -> dict[str, Any]:
    return {k: r for k, r in template["Resources"].items() if r["Type"] == kind}


def test_everything_runs_on_fargate_in_private_subnets(compute: dict[str, Any]) -> None:
    services = _of_type(compute, "AWS::ECS::Service")
    assert set(services) == {"ApiService", "WorkerService", "PrefectServerService"}
    private = [{"Ref": "PrivateSubnetA"}, {"Ref": "PrivateSubnetB"}]
    for name, service in services.items():
        props = service["Properties"]
        assert props["LaunchType"] == "FARGATE", name
        network = props["NetworkConfiguration"]["AwsvpcConfiguration"]
        assert network["Subnets"] == private and network["AssignPublicIp"] == "DISABLED", name
    for name, definition in _of_type(compute, "AWS::ECS::TaskDefinition").items():
        assert definition["Properties"]["RequiresCompatibilities"] == ["FARGATE"], name
        for container in definition["Properties"]["ContainerDefinitions"]:
            assert container["Image"] == {"Ref": "ImageUri"}, name  # one image for all
            logs = container["LogConfiguration"]
            assert logs["LogDriver"] == "awslogs", name
            assert logs["Options"]["awslogs-group"] == {"Ref": "LogGroup"}, name
            assert "HealthCheck" in container, name
    assert compute["Resources"]["Cluster"]["Properties"]["CapacityProviders"][0] == "FARGATE"
    assert compute["Resources"]["LoadBalancer"]["Properties"]["Subnets"] == [
        {"Ref": "PublicSubnetA"},
        {"Ref": "PublicSubnetB"},
    ]


def test_prefect_is_cloud_or_self_hosted_by_a_parameter(compute: dict[str, Any]) -> None:
    mode = compute["Parameters"]["PrefectMode"]
    assert mode["AllowedValues"] == ["cloud", "self-hosted"]
    assert compute["Parameters"]["PrefectCloudApiKey"]["NoEcho"] is True
    resources = compute["Resources"]
    assert resources["PrefectCloudSecret"]["Condition"] == "PrefectCloud"
    for name in ("Database", "DatabaseSubnetGroup", "PrefectServerService", "PrefectAuthSecret"):
        assert resources[name]["Condition"] == "SelfHosted", name
    database = resources["Database"]["Properties"]
    assert database["Engine"] == "postgres"
    assert database["PubliclyAccessible"] is False
    assert database["StorageEncrypted"] is True
    assert database["ManageMasterUserPassword"] is True  # the password never in a template
    assert resources["DatabaseSubnetGroup"]["Properties"]["SubnetIds"] == [
        {"Ref": "PrivateSubnetA"},
        {"Ref": "PrivateSubnetB"},
    ]
    ingress = resources["DatabaseSecurityGroup"]["Properties"]["SecurityGroupIngress"]
    assert ingress == [
        {
            "IpProtocol": "tcp",
            "FromPort": 5432,
            "ToPort": 5432,
            "SourceSecurityGroupId": {"Ref": "PrefectServerSecurityGroup"},
        }
    ]
    # The cloud key reaches containers only as a secret, never as an environment value.
    for definition in _of_type(compute, "AWS::ECS::TaskDefinition").values():
        for container in definition["Properties"]["ContainerDefinitions"]:
            assert "PrefectCloudApiKey" not in json.dumps(container.get("Environment", []))


def test_the_self_hosted_server_batches_its_writes_as_the_local_one(
    compute: dict[str, Any],
) -> None:
    [server] = compute["Resources"]["PrefectServerTaskDefinition"]["Properties"][
        "ContainerDefinitions"
    ]
    environment = {pair["Name"]: pair["Value"] for pair in server["Environment"]}
    assert SERVER_TUNING.items() <= environment.items()


# --- Least privilege ------------------------------------------------------------------


def test_the_api_task_role_only_has_the_read_only_api_policy(
    compute: dict[str, Any], storage: dict[str, Any]
) -> None:
    role = compute["Resources"]["ApiTaskRole"]["Properties"]
    assert role["ManagedPolicyArns"] == [{"Ref": "ApiPolicyArn"}]
    assert "Policies" not in role
    system = cfn_yaml.load(str(SYSTEM))
    given = system["Resources"]["Compute"]["Properties"]["Parameters"]["ApiPolicyArn"]
    assert given == {"Fn::GetAtt": ["Storage", "Outputs.ApiPolicyArn"]}
    assert storage["Outputs"]["ApiPolicyArn"]["Value"] == {"Ref": "PipelineApiPolicy"}
    document = storage["Resources"]["PipelineApiPolicy"]["Properties"]["PolicyDocument"]
    for statement in document["Statement"]:
        assert statement["Effect"] == "Allow"
        actions = (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
        for action in actions:
            assert not action.split(":", 1)[1].startswith(_WRITE_VERBS), action


def test_flow_runs_get_the_worker_policy_and_nothing_else(compute: dict[str, Any]) -> None:
    role = compute["Resources"]["FlowRunTaskRole"]["Properties"]
    assert role["ManagedPolicyArns"] == [{"Ref": "WorkerPolicyArn"}]
    assert "Policies" not in role


def _statements(role: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = {}
    for policy in role["Properties"].get("Policies", []):
        for index, statement in enumerate(policy["PolicyDocument"]["Statement"]):
            found[statement.get("Sid", f"{policy['PolicyName']}-{index}")] = statement
    return found


def test_the_worker_runs_tasks_only_in_its_cluster_as_the_flow_run_roles(
    compute: dict[str, Any],
) -> None:
    statements = _statements(compute["Resources"]["WorkerTaskRole"])
    assert statements["PassFlowRunRoles"]["Action"] == "iam:PassRole"
    assert statements["PassFlowRunRoles"]["Resource"] == [
        {"Fn::GetAtt": ["FlowRunTaskRole", "Arn"]},
        {"Fn::GetAtt": ["RuntimeExecutionRole", "Arn"]},
    ]
    assert statements["PassFlowRunRoles"]["Condition"] == {
        "StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}
    }
    assert statements["RunInThisCluster"]["Condition"] == {
        "ArnEquals": {"ecs:cluster": {"Fn::GetAtt": ["Cluster", "Arn"]}}
    }
    actions = {
        action
        for statement in statements.values()
        for action in (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
    }
    assert actions == {
        "ecs:RegisterTaskDefinition",
        "ecs:DescribeTaskDefinition",
        "ecs:RunTask",
        "ecs:DescribeTasks",
        "ecs:StopTask",
        "ecs:TagResource",
        "ec2:DescribeVpcs",
        "ec2:DescribeSubnets",
        "iam:PassRole",
    }
    # No AWS data access of its own: the flow runs do the work.
    assert not any(a.startswith(("s3:", "dynamodb:", "sns:", "rekognition:")) for a in actions)


def test_each_execution_role_reads_only_its_own_secrets(compute: dict[str, Any]) -> None:
    resources = compute["Resources"]

    def secrets_of(role: str) -> list[Any]:
        (statement,) = _statements(resources[role]).values()
        assert statement["Action"] == "secretsmanager:GetSecretValue"
        resource = statement["Resource"]
        return resource if isinstance(resource, list) else [resource]

    prefect = {
        "Fn::If": ["PrefectCloud", {"Ref": "PrefectCloudSecret"}, {"Ref": "PrefectAuthSecret"}]
    }
    assert secrets_of("ApiExecutionRole") == [
        {"Ref": "WebhookKeySecret"},
        {"Ref": "OperatorKeySecret"},
        prefect,
    ]
    assert secrets_of("RuntimeExecutionRole") == [prefect]
    assert secrets_of("PrefectServerExecutionRole") == [
        {"Fn::GetAtt": ["Database", "MasterUserSecret.SecretArn"]},
        {"Ref": "PrefectAuthSecret"},
    ]


# --- On MiniStack ---------------------------------------------------------------------

# MiniStack 1.5.33's CloudFormation refuses these types, and fails the ECS services (it
# subtracts from a Number parameter it kept as text). Resources that refer to any of them
# are left out too.
REFUSED_ON_MINISTACK = {"AWS::EC2::EIP", "AWS::EC2::NatGateway", "AWS::ECS::Service"}


def ministack_part(template: dict[str, Any]) -> dict[str, Any]:
    resources = {
        k: r for k, r in template["Resources"].items() if r["Type"] not in REFUSED_ON_MINISTACK
    }
    while True:
        dangling = {
            k
            for k, r in resources.items()
            if (references(r) - set(template["Parameters"])) - set(resources)
        }
        if not dangling:
            break
        resources = {k: r for k, r in resources.items() if k not in dangling}
    outputs = {
        k: o
        for k, o in template["Outputs"].items()
        if references(o) <= set(resources) | set(template["Parameters"])
    }
    return {**template, "Resources": resources, "Outputs": outputs}


def test_what_ministack_accepts_deploys_beside_the_storage_stack(
    aws_stack: str, compute: dict[str, Any]
) -> None:
    body = ministack_part(compute)
    left_out = set(compute["Resources"]) - set(body["Resources"])
    assert left_out == {
        "NatAddress",
        "NatGateway",
        "PrivateDefaultRoute",
        "ApiService",
        "WorkerService",
        "PrefectServerService",
    }
    storage = describe_stack(STACK_NAME)
    assert storage is not None
    parameters = {
        "ImageUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/image-pipeline:test",
        "DomainName": "images.example.com",
        "CertificateArn": "arn:aws:acm:us-east-1:000000000000:certificate/test",
        "WebhookApiKey": "webhook-key-0123456789",
        "PrefectMode": "cloud",
        "PrefectCloudApiUrl": "https://api.prefect.cloud/api/accounts/a/workspaces/b",
        "PrefectCloudApiKey": "pnu_test_key",
        "TopicArn": aws_stack,
        "WorkerPolicyArn": storage.outputs["WorkerPolicyArn"],
        "ApiPolicyArn": storage.outputs["ApiPolicyArn"],
    }
    parameters |= {
        name: spec["Default"]
        for name, spec in compute["Parameters"].items()
        if name not in parameters and "Default" in spec
    }
    stack = deploy_stack("image-pipeline-compute", body, parameters)
    assert set(stack.physical_ids) == set(body["Resources"]) - {"PrefectAuthSecret"} - {
        k for k, r in body["Resources"].items() if r.get("Condition") == "SelfHosted"
    }
    assert stack.outputs["WebhookUrl"] == "https://images.example.com/events/s3"

    iam = client("iam")

    def attached(role: str) -> list[str]:
        name = stack.physical_ids[role].rsplit("/", 1)[-1]
        return [
            p["PolicyArn"]
            for p in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]
        ]

    assert attached("ApiTaskRole") == [storage.outputs["ApiPolicyArn"]]
    assert attached("FlowRunTaskRole") == [storage.outputs["WorkerPolicyArn"]]

    ecs = client("ecs")
    api = ecs.describe_task_definition(taskDefinition=stack.physical_ids["ApiTaskDefinition"])[
        "taskDefinition"
    ]
    (container,) = api["containerDefinitions"]
    assert container["image"] == parameters["ImageUri"]
    environment = {item["name"]: item["value"] for item in container["environment"]}
    assert environment["IMAGE_PIPELINE_TOPIC_ARN"] == aws_stack
    # Two keys and Prefect Cloud's URL and key; MiniStack 1.5.33 keeps secrets' count but
    # not their fields (the template's are checked above, and on AWS by ECS itself).
    assert len(container["secrets"]) == 4
    assert "PREFECT_API_KEY" not in environment

    worker = ecs.describe_task_definition(
        taskDefinition=stack.physical_ids["WorkerTaskDefinition"]
    )["taskDefinition"]
    (container,) = worker["containerDefinitions"]
    assert container["command"] == ["python", "-m", "deployments.aws.worker"]
    environment = {item["name"]: item["value"] for item in container["environment"]}
    defaults = json.loads(environment["IMAGE_PIPELINE_ECS_JOB_DEFAULTS"])  # valid JSON, resolved
    assert defaults["cluster"] == stack.physical_ids["Cluster"]
    assert defaults["task_role_arn"].endswith(
        stack.physical_ids["FlowRunTaskRole"].rsplit("/", 1)[-1]
    )
    assert defaults["env"]["IMAGE_PIPELINE_TOPIC_ARN"] == aws_stack
    assert defaults["prefect_api_key_secret_arn"].endswith(":PREFECT_API_KEY::")

    secrets = client("secretsmanager")
    operator_key = secrets.get_secret_value(SecretId=stack.outputs["OperatorKeySecretArn"])[
        "SecretString"
    ]
    assert len(operator_key) == 48  # made by Secrets Manager (MiniStack keeps punctuation)
    cloud = json.loads(
        secrets.get_secret_value(SecretId=stack.physical_ids["PrefectCloudSecret"])["SecretString"]
    )
    assert cloud == {
        "PREFECT_API_URL": parameters["PrefectCloudApiUrl"],
        "PREFECT_API_KEY": "pnu_test_key",
    }

    elb = client("elbv2")
    (listener,) = [
        listener
        for listener in elb.describe_listeners(LoadBalancerArn=stack.physical_ids["LoadBalancer"])[
            "Listeners"
        ]
        if listener["Port"] == 443
    ]
    assert listener["Protocol"] == "HTTPS"
    assert listener["Certificates"][0]["CertificateArn"] == parameters["CertificateArn"]


def test_the_readme_sequence_names_what_the_stack_has(system: dict[str, Any]) -> None:
    """The README's commands pass only parameters the stack declares, every one it needs,
    and read only outputs it has."""
    readme = (AWS_DIR.parents[1] / "README.md").read_text()
    section = readme[readme.index("## The whole system on AWS") :]
    section = section[: section.index("\n## ", 1)]
    overrides = section[section.index("--parameter-overrides") : section.index("# 4.")]
    given = set(re.findall(r"\b([A-Z][A-Za-z]+)=", overrides))
    assert given <= set(system["Parameters"])
    assert {name for name, spec in system["Parameters"].items() if "Default" not in spec} <= given
    outputs = set(re.findall(r"\$\(out (\w+)\)", section))
    assert outputs and outputs <= set(system["Outputs"])
    assert "aws cloudformation package" in section  # the nested templates are uploaded
