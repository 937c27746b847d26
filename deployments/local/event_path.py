"""The EventBridge connection and API destination, made through the EventBridge API.

MiniStack's CloudFormation refuses these two types ("Template format error: Unrecognized
resource types"), so they are created from their definitions in the template by these
handlers, and the rest of the event path (rule, target, role, dead-letter queue) is
deployed as the stack `image-pipeline-events`. A connection or API destination that
exists is updated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from deployments.local.cloudformation import describe_stack, wait_for_stack, wait_until
from deployments.local.template import EVENTS_STACK_NAME, STACK_NAME, load_template, resources_of
from image_pipeline.aws import client, error_code


@dataclass(frozen=True)
class EventPath:
    connection_arn: str
    api_destination_arn: str
    rule_name: str
    dead_letter_queue_url: str


def remove_event_path() -> None:
    """Delete the rule stack, the API destination and the connection (tests, `make down`)."""
    cfn = client("cloudformation")
    if describe_stack(EVENTS_STACK_NAME) is not None:
        cfn.delete_stack(StackName=EVENTS_STACK_NAME)
        wait_for_stack(EVENTS_STACK_NAME)
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
    wait_until(
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


API_HANDLERS: dict[str, Callable[[str, dict[str, Any]], tuple[str, str]]] = {
    "AWS::Events::Connection": _ensure_connection,
    "AWS::Events::ApiDestination": _ensure_api_destination,
}
