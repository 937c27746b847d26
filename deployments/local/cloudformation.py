"""Create, update and wait for CloudFormation stacks on the local emulator.

Deploying is idempotent: a stack that exists is updated ("no updates" is fine). Resources
that already exist outside the stack (made by an older version of the local bootstrap, or
buckets that MiniStack's S3 persistence restored while its other state was lost) are
imported into the stack first, with their identifying properties only, so that the stack
update that follows applies the rest of the template's definition (EventBridge
notifications, encryption, public access block) to them; their data is kept.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from deployments.local.template import resolve
from image_pipeline.aws import client, error_code

logger = logging.getLogger(__name__)

# Resources that exist outside the stack are imported with these properties only (what
# identifies them, plus what their type cannot be described without); the stack update
# that follows applies the rest. A table's indexes are among them, because an update
# that "adds" an index the table already has would fail.
_ADOPT_PROPERTIES = {
    "AWS::S3::Bucket": ("BucketName",),
    "AWS::SNS::Topic": ("TopicName",),
    "AWS::DynamoDB::Table": (
        "TableName",
        "KeySchema",
        "AttributeDefinitions",
        "GlobalSecondaryIndexes",
        "BillingMode",
    ),
}
_NAME_PROPERTY = {
    "AWS::S3::Bucket": "BucketName",
    "AWS::SNS::Topic": "TopicName",
    "AWS::DynamoDB::Table": "TableName",
}

_STACK_TIMEOUT = 120.0
_POLL_SECONDS = 0.05
# States from which a stack can only be deleted (its retained resources are then adopted).
_DEAD_STATES = frozenset({"ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "CREATE_FAILED"})
GOOD_STATES = frozenset(
    {"CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE", "DELETE_COMPLETE"}
)


@dataclass(frozen=True)
class Stack:
    name: str
    status: str
    outputs: dict[str, str]
    physical_ids: dict[str, str]


def describe_stack(name: str) -> Stack | None:
    cfn = client("cloudformation")
    try:
        (stack,) = cfn.describe_stacks(StackName=name)["Stacks"]
    except ClientError as exc:
        if error_code(exc) == "ValidationError" and "does not exist" in str(exc):
            return None
        raise
    if stack["StackStatus"] == "DELETE_COMPLETE":
        return None
    resources = cfn.describe_stack_resources(StackName=name)["StackResources"]
    return Stack(
        name=name,
        status=stack["StackStatus"],
        outputs={o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])},
        physical_ids={
            r["LogicalResourceId"]: r["PhysicalResourceId"]
            for r in resources
            if r.get("PhysicalResourceId")
        },
    )


def deploy_stack(name: str, body: dict[str, Any], parameter_values: Mapping[str, str]) -> Stack:
    """Create or update stack `name` from `body`; import what already exists outside it."""
    cfn = client("cloudformation")
    parameters = [
        {"ParameterKey": key, "ParameterValue": str(parameter_values[key])}
        for key in body.get("Parameters", {})
    ]
    current = describe_stack(name)
    if current is not None and current.status.endswith("_IN_PROGRESS"):
        _settle(name)  # another run's operation (or one MiniStack restored mid-way)
        current = describe_stack(name)
    if current is not None and current.status in _DEAD_STATES:
        # A stack whose creation failed can only be deleted; what it retained is adopted below.
        cfn.delete_stack(StackName=name)
        wait_for_stack(name)
        current = None
    adopt = _existing_outside(body, parameter_values, current)
    if adopt:
        _import(name, body, parameters, adopt, current)
        current = describe_stack(name)
    common = {
        "StackName": name,
        "TemplateBody": json.dumps(body),
        "Parameters": parameters,
        "Capabilities": ["CAPABILITY_IAM"],
    }
    try:
        if current is None:
            cfn.create_stack(**common)
        else:
            cfn.update_stack(**common)
    except ClientError as exc:
        if "No updates are to be performed" not in str(exc):
            raise
    else:
        wait_for_stack(name)
    stack = describe_stack(name)
    assert stack is not None
    return stack


def _existing_outside(
    body: Mapping[str, Any], parameter_values: Mapping[str, str], current: Stack | None
) -> dict[str, dict[str, str]]:
    """Resource identifiers, by logical id, of the resources that exist but not in the stack."""
    managed = set(current.physical_ids) if current else set()
    found = {}
    for logical_id, resource in body["Resources"].items():
        kind = resource["Type"]
        if logical_id in managed or kind not in _NAME_PROPERTY:
            continue
        name = resolve(resource["Properties"].get(_NAME_PROPERTY[kind]), parameter_values)
        identifier = _EXISTS[kind](name) if isinstance(name, str) else None
        if identifier is not None:
            found[logical_id] = identifier
    return found


def _bucket_exists(name: str) -> dict[str, str] | None:
    try:
        client("s3").head_bucket(Bucket=name)
    except ClientError as exc:
        if error_code(exc) in ("404", "NoSuchBucket", "NotFound"):
            return None
        raise
    return {"BucketName": name}


def _table_exists(name: str) -> dict[str, str] | None:
    try:
        client("dynamodb").describe_table(TableName=name)
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return None
        raise
    return {"TableName": name}


def _topic_exists(name: str) -> dict[str, str] | None:
    for page in client("sns").get_paginator("list_topics").paginate():
        for topic in page["Topics"]:
            if topic["TopicArn"].rsplit(":", 1)[-1] == name:
                return {"TopicArn": topic["TopicArn"]}
    return None


_EXISTS: dict[str, Callable[[str], dict[str, str] | None]] = {
    "AWS::S3::Bucket": _bucket_exists,
    "AWS::DynamoDB::Table": _table_exists,
    "AWS::SNS::Topic": _topic_exists,
}


def _import(
    name: str,
    body: Mapping[str, Any],
    parameters: list[dict[str, str]],
    adopt: Mapping[str, dict[str, str]],
    current: Stack | None,
) -> None:
    """Import the `adopt` resources into stack `name` with their identifying properties."""
    cfn = client("cloudformation")
    resources: dict[str, Any] = {}
    if current is not None:
        deployed = cfn.get_template(StackName=name)["TemplateBody"]
        resources |= (json.loads(deployed) if isinstance(deployed, str) else deployed)["Resources"]
    for logical_id in adopt:
        resource = copy.deepcopy(body["Resources"][logical_id])
        keep = _ADOPT_PROPERTIES[resource["Type"]]
        resource["Properties"] = {k: v for k, v in resource["Properties"].items() if k in keep}
        resources[logical_id] = resource
    logger.info("Importing existing %s into stack %s", sorted(adopt), name)
    change_set = f"adopt-{time.time_ns()}"
    cfn.create_change_set(
        StackName=name,
        ChangeSetName=change_set,
        ChangeSetType="IMPORT",
        TemplateBody=json.dumps(
            {key: value for key, value in body.items() if key != "Outputs"}
            | {"Resources": resources}
        ),
        Parameters=parameters,
        Capabilities=["CAPABILITY_IAM"],
        ResourcesToImport=[
            {
                "ResourceType": body["Resources"][logical_id]["Type"],
                "LogicalResourceId": logical_id,
                "ResourceIdentifier": identifier,
            }
            for logical_id, identifier in adopt.items()
        ],
    )

    def ready() -> bool:
        described = cfn.describe_change_set(StackName=name, ChangeSetName=change_set)
        if described["Status"] == "FAILED":
            raise RuntimeError(f"import into {name} refused: {described.get('StatusReason')}")
        return described["Status"] == "CREATE_COMPLETE"

    wait_until(ready, what=f"the import change set of {name}")
    cfn.execute_change_set(StackName=name, ChangeSetName=change_set)
    wait_for_stack(name)


def wait_for_stack(name: str) -> None:
    """Wait for the stack's operation to end; raise with CloudFormation's reasons if it failed."""
    status = _settle(name)
    if status not in GOOD_STATES:
        events = client("cloudformation").describe_stack_events(StackName=name)["StackEvents"]
        reasons = [
            f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason')}"
            for e in events
            if e["ResourceStatus"].endswith("FAILED")
        ]
        raise RuntimeError(f"stack {name} ended in {status}: {reasons}")


def _settle(name: str) -> str:
    """Wait until no operation runs on the stack; its status then."""
    cfn = client("cloudformation")
    status = ""

    def settled() -> bool:
        nonlocal status
        try:
            (stack,) = cfn.describe_stacks(StackName=name)["Stacks"]
        except ClientError as exc:
            if "does not exist" in str(exc):
                status = "DELETE_COMPLETE"
                return True
            raise
        status = stack["StackStatus"]
        return not status.endswith("_IN_PROGRESS")

    wait_until(settled, what=f"stack {name}")
    return status


def wait_until(condition: Callable[[], bool], *, what: str) -> None:
    """Poll `condition` every 50 ms until it holds, for up to two minutes.

    Not `processes.wait_until`: the emulator answers stack operations within milliseconds,
    and its 100 ms interval would add up over the many waits of a deployment.
    """
    deadline = time.monotonic() + _STACK_TIMEOUT
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {_STACK_TIMEOUT:.0f} s waiting for {what}")
        time.sleep(_POLL_SECONDS)
