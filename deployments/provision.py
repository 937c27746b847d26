"""Deploy the pipeline's AWS resources on the local emulator from the CloudFormation template.

`deployments/aws/template.yaml` is the one definition of the AWS side. On real AWS it is
deployed as one stack. Locally (MiniStack, used by `make up` and the tests) this module
deploys the same template in parts:

- `provision()`: the storage stack `image-pipeline` (both buckets, the table, the topic,
  the worker policy), through MiniStack's CloudFormation;
- `provision_event_path(webhook_url, api_key)`: the EventBridge connection and API
  destination through the EventBridge API, from their definitions in the template,
  because MiniStack's CloudFormation refuses those two types ("Template format error:
  Unrecognized resource types"); then the stack `image-pipeline-events` (the rule and
  its target with retry policy and dead-letter queue, the role that invokes the API
  destination, the queue's policy), again through CloudFormation, with the template's
  references to resources outside that stack replaced by their real names and ARNs.

Every template resource type is in exactly one of the allow-lists below; a type added to
the template without being placed here is an error, not a silently skipped resource.

Both functions are idempotent: a stack that exists is updated ("no updates" is fine), a
connection or API destination that exists is updated. Resources that already exist
outside the stack (made by an older version of this module, or buckets that MiniStack's
S3 persistence restored while its other state was lost) are imported into the stack
first, with their identifying properties only, so that the stack update that follows
applies the rest of the template's definition (EventBridge notifications, encryption,
public access block) to them; their data is kept.

The template's parameter constraints (HTTPS-only `WebhookUrl`) apply on AWS, not here:
locally the webhook is `http://127.0.0.1:<api_port>/events/s3`.
"""

from __future__ import annotations

import copy
import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from botocore.exceptions import ClientError

from image_pipeline.aws import client, error_code
from image_pipeline.settings import Settings, get_settings

logger = logging.getLogger(__name__)

TEMPLATE_PATH = Path(__file__).resolve().parent / "aws" / "template.yaml"

STACK_NAME = "image-pipeline"
EVENTS_STACK_NAME = "image-pipeline-events"

# Deployed by `provision()` through MiniStack's CloudFormation (accepted by MiniStack 1.5.33).
STORAGE_TYPES = frozenset(
    {
        "AWS::S3::Bucket",
        "AWS::S3::BucketPolicy",
        "AWS::DynamoDB::Table",
        "AWS::SNS::Topic",
        "AWS::IAM::ManagedPolicy",
    }
)
# Deployed by `provision_event_path()` through MiniStack's CloudFormation (accepted too).
EVENT_PATH_TYPES = frozenset(
    {"AWS::Events::Rule", "AWS::IAM::Role", "AWS::SQS::Queue", "AWS::SQS::QueuePolicy"}
)
# Refused by MiniStack's CloudFormation: created through the EventBridge API, in this order.
API_TYPES = ("AWS::Events::Connection", "AWS::Events::ApiDestination")

STATUS_INDEX = "status-updated_at-index"

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
_GOOD_STATES = frozenset(
    {"CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE", "DELETE_COMPLETE"}
)


# --- The template ----------------------------------------------------------------------


class _TemplateLoader(yaml.SafeLoader):
    """YAML loader that turns CloudFormation's short tags into their long forms."""


def _construct_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix in ("Ref", "Condition"):
        return {suffix: value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_TemplateLoader.add_multi_constructor("!", _construct_tag)


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """The template as plain data, short-form tags expanded (`!Ref x` -> `{"Ref": "x"}`)."""
    with path.open() as file:
        return yaml.load(file, Loader=_TemplateLoader)  # a SafeLoader subclass


def template_parameters(settings: Settings) -> dict[str, str]:
    """The template's parameter values that correspond to the pipeline's settings."""
    return {
        "UploadsBucketName": settings.uploads_bucket,
        "ThumbnailsBucketName": settings.thumbnails_bucket,
        "TableName": settings.table_name,
        "TopicName": settings.topic_name,
        "UploadsPrefix": settings.uploads_prefix,
    }


def resources_of(template: Mapping[str, Any], types: Iterable[str]) -> dict[str, Any]:
    wanted = set(types)
    return {lid: res for lid, res in template["Resources"].items() if res["Type"] in wanted}


def check_classified(template: Mapping[str, Any]) -> None:
    """Every resource type of the template is deployed by exactly one path."""
    known = STORAGE_TYPES | EVENT_PATH_TYPES | set(API_TYPES)
    unknown = sorted(
        {res["Type"] for res in template["Resources"].values() if res["Type"] not in known}
    )
    if unknown:
        raise ValueError(
            f"{TEMPLATE_PATH.name} has resource types the local bootstrap does not place: "
            f"{unknown}. Add each to STORAGE_TYPES, EVENT_PATH_TYPES or API_TYPES in "
            "deployments/provision.py."
        )


_SUB_VARIABLE = re.compile(r"\$\{([^}!]+)\}")


def resolve(node: Any, values: Mapping[str, Any]) -> Any:
    """`node` with `Ref`, `Fn::GetAtt` and `Fn::Sub` of the names in `values` replaced.

    `values` maps a parameter or logical id to its `Ref` value and `"Id.Attribute"` to
    an attribute. References to other names are left in place.
    """
    if isinstance(node, list):
        return [resolve(item, values) for item in node]
    if not isinstance(node, dict):
        return node
    if len(node) == 1:
        (key, arg), *_ = node.items()
        if key == "Ref" and isinstance(arg, str) and arg in values:
            return values[arg]
        if key == "Fn::GetAtt" and isinstance(arg, list) and ".".join(arg) in values:
            return values[".".join(arg)]
        if key == "Fn::Sub" and isinstance(arg, str):
            text = _SUB_VARIABLE.sub(
                lambda m: str(values[m.group(1)]) if m.group(1) in values else m.group(0), arg
            )
            return text if not _SUB_VARIABLE.search(text) else {"Fn::Sub": text}
    return {key: resolve(value, values) for key, value in node.items()}


def references(node: Any) -> set[str]:
    """The parameter and resource names `node` refers to (pseudo parameters excluded)."""
    found: set[str] = set()
    if isinstance(node, list):
        for item in node:
            found |= references(item)
    elif isinstance(node, dict):
        for key, arg in node.items():
            if key == "Ref" and isinstance(arg, str):
                found.add(arg)
            elif key == "Fn::GetAtt":
                found.add(arg[0] if isinstance(arg, list) else str(arg).split(".")[0])
            elif key == "Fn::Sub":
                text = arg if isinstance(arg, str) else arg[0]
                found |= {name.split(".")[0] for name in _SUB_VARIABLE.findall(text)}
                if isinstance(arg, list):
                    found |= references(arg[1])
            else:
                found |= references(arg)
    return {name for name in found if not name.startswith("AWS::")}


def stack_template(
    template: Mapping[str, Any], types: Iterable[str], outside: Mapping[str, Any]
) -> dict[str, Any]:
    """The part of `template` of resource `types`, as a template of its own.

    References to resources outside it are replaced by their values from `outside`; it
    keeps the parameters it uses and the outputs it can still answer.
    """
    resources = resolve(copy.deepcopy(resources_of(template, types)), outside)
    parameters = {
        name: spec
        for name, spec in template.get("Parameters", {}).items()
        if name in references(resources)
    }
    dangling = references(resources) - set(resources) - set(parameters)
    if dangling:
        raise ValueError(f"the local stack of {sorted(types)} refers to {sorted(dangling)}")
    # An output belongs here when it names only this part's resources or the API-created
    # ones (whose values are in `outside`), not another stack's.
    own = set(resources) | set(resources_of(template, API_TYPES)) | set(parameters)
    outputs = {}
    for name, output in template.get("Outputs", {}).items():
        resolved = resolve(copy.deepcopy(output), outside)
        if references(output) <= own and references(resolved) <= set(resources) | set(parameters):
            outputs[name] = resolved
    body = {
        "AWSTemplateFormatVersion": template.get("AWSTemplateFormatVersion", "2010-09-09"),
        "Description": f"Local part of {TEMPLATE_PATH.name}: {', '.join(sorted(resources))}",
        "Parameters": parameters,
        "Resources": resources,
    }
    return body | ({"Outputs": outputs} if outputs else {})


# --- Public entry points ---------------------------------------------------------------


def provision(settings: Settings | None = None) -> str:
    """Deploy the buckets, table, topic and worker policy; return the topic ARN."""
    settings = settings or get_settings()
    started = time.monotonic()
    template = load_template()
    check_classified(template)
    body = stack_template(template, STORAGE_TYPES, {})
    stack = deploy_stack(STACK_NAME, body, template_parameters(settings))
    logger.info("Stack %s ready in %.2f s", STACK_NAME, time.monotonic() - started)
    return stack.outputs["TopicArn"]


@dataclass(frozen=True)
class EventPath:
    connection_arn: str
    api_destination_arn: str
    rule_name: str
    dead_letter_queue_url: str


def provision_event_path(
    webhook_url: str, api_key: str, settings: Settings | None = None
) -> EventPath:
    """Route the uploads bucket's "Object Created" events to `webhook_url` (a POST with
    the `x-api-key` header set to `api_key`): connection, API destination, rule, target."""
    settings = settings or get_settings()
    started = time.monotonic()
    template = load_template()
    check_classified(template)
    storage = describe_stack(STACK_NAME)
    if storage is None or storage.status not in _GOOD_STATES:
        provision(settings)
        storage = describe_stack(STACK_NAME)
        assert storage is not None
    values: dict[str, Any] = dict(storage.physical_ids)
    parameters = template_parameters(settings) | {
        "WebhookUrl": webhook_url,
        "WebhookApiKey": api_key,
    }
    for resource_type in API_TYPES:
        for logical_id, resource in resources_of(template, [resource_type]).items():
            props = resolve(resource.get("Properties", {}), {**parameters, **values})
            if references(props):
                raise ValueError(f"{logical_id} refers to unresolved {sorted(references(props))}")
            name, arn = _API_HANDLERS[resource_type](f"{STACK_NAME}-{logical_id}", props)
            values |= {logical_id: name, f"{logical_id}.Arn": arn}
    body = stack_template(template, EVENT_PATH_TYPES, values)
    stack = deploy_stack(EVENTS_STACK_NAME, body, template_parameters(settings))
    logger.info("Event path ready in %.2f s", time.monotonic() - started)
    rule_id, queue_id = (
        next(iter(resources_of(body, [kind]))) for kind in ("AWS::Events::Rule", "AWS::SQS::Queue")
    )
    return EventPath(
        connection_arn=values["WebhookConnection.Arn"],
        api_destination_arn=values["WebhookDestination.Arn"],
        rule_name=stack.physical_ids[rule_id],
        dead_letter_queue_url=stack.physical_ids[queue_id],
    )


def remove_event_path() -> None:
    """Delete the rule stack, the API destination and the connection (tests, `make down`)."""
    cfn = client("cloudformation")
    if describe_stack(EVENTS_STACK_NAME) is not None:
        cfn.delete_stack(StackName=EVENTS_STACK_NAME)
        _wait_for_stack(EVENTS_STACK_NAME)
    events = client("events")
    template = load_template()
    for resource_type, delete in (
        ("AWS::Events::ApiDestination", events.delete_api_destination),
        ("AWS::Events::Connection", events.delete_connection),
    ):
        for logical_id in resources_of(template, [resource_type]):
            try:
                delete(Name=f"{STACK_NAME}-{logical_id}")
            except ClientError as exc:
                if error_code(exc) != "ResourceNotFoundException":
                    raise


# --- EventBridge API resources ---------------------------------------------------------


def _ensure_connection(name: str, props: dict[str, Any]) -> tuple[str, str]:
    events = client("events")
    fields = {key: props[key] for key in ("AuthorizationType", "AuthParameters", "Description")}
    try:
        # Updated every time: the key may have changed, and it cannot be read back.
        arn = events.update_connection(Name=name, **fields)["ConnectionArn"]
    except ClientError as exc:
        if error_code(exc) != "ResourceNotFoundException":
            raise
        arn = events.create_connection(Name=name, **fields)["ConnectionArn"]
    _wait_until(
        lambda: events.describe_connection(Name=name)["ConnectionState"] == "AUTHORIZED",
        what=f"connection {name} to be authorised",
    )
    return name, arn


def _ensure_api_destination(name: str, props: dict[str, Any]) -> tuple[str, str]:
    events = client("events")
    fields = {
        key: props[key]
        for key in (
            "ConnectionArn",
            "InvocationEndpoint",
            "HttpMethod",
            "InvocationRateLimitPerSecond",
            "Description",
        )
        if key in props
    }
    try:
        arn = events.update_api_destination(Name=name, **fields)["ApiDestinationArn"]
    except ClientError as exc:
        if error_code(exc) != "ResourceNotFoundException":
            raise
        arn = events.create_api_destination(Name=name, **fields)["ApiDestinationArn"]
    return name, arn


_API_HANDLERS: dict[str, Callable[[str, dict[str, Any]], tuple[str, str]]] = {
    "AWS::Events::Connection": _ensure_connection,
    "AWS::Events::ApiDestination": _ensure_api_destination,
}


# --- Stacks ----------------------------------------------------------------------------


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
        _wait_for_stack(name)
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
        _wait_for_stack(name)
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

    _wait_until(ready, what=f"the import change set of {name}")
    cfn.execute_change_set(StackName=name, ChangeSetName=change_set)
    _wait_for_stack(name)


def _wait_for_stack(name: str) -> None:
    """Wait for the stack's operation to end; raise with CloudFormation's reasons if it failed."""
    status = _settle(name)
    if status not in _GOOD_STATES:
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

    _wait_until(settled, what=f"stack {name}")
    return status


def _wait_until(condition: Callable[[], bool], *, what: str) -> None:
    deadline = time.monotonic() + _STACK_TIMEOUT
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {_STACK_TIMEOUT:.0f} s waiting for {what}")
        time.sleep(_POLL_SECONDS)


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--webhook-url",
        help="also route upload events to this URL, e.g. http://127.0.0.1:8000/events/s3 "
        "(the key is IMAGE_PIPELINE_WEBHOOK_API_KEY)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    started = time.monotonic()
    print(f"topic: {provision()}")
    if args.webhook_url:
        key = get_settings().webhook_api_key
        if key is None:
            parser.error("IMAGE_PIPELINE_WEBHOOK_API_KEY is not set")
        print(provision_event_path(args.webhook_url, key.get_secret_value()))
    print(f"provisioned in {time.monotonic() - started:.2f} s")


if __name__ == "__main__":
    main()
