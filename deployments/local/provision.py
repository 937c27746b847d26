"""Deploy the pipeline's AWS resources on the local emulator from the CloudFormation template.

Used by `make up` and the tests (`python -m deployments.local.provision [--webhook-url URL]`):

- `provision()`: the storage stack `image-pipeline` (both buckets, the table, the topic,
  the worker policy), through MiniStack's CloudFormation;
- `provision_event_path(webhook_url, api_key)`: the EventBridge connection and API
  destination through the EventBridge API (`deployments.local.event_path`), then the
  stack `image-pipeline-events` (the rule and its target with retry policy and
  dead-letter queue, the role that invokes the API destination, the queue's policy),
  again through CloudFormation, with the template's references to resources outside that
  stack replaced by their real names and ARNs.

Both are idempotent (see `deployments.local.cloudformation`).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from deployments.local.cloudformation import GOOD_STATES, deploy_stack, describe_stack
from deployments.local.event_path import API_HANDLERS, EventPath
from deployments.local.template import (
    API_TYPES,
    EVENT_PATH_TYPES,
    EVENTS_STACK_NAME,
    STACK_NAME,
    STORAGE_TYPES,
    check_classified,
    load_template,
    references,
    resolve,
    resources_of,
    stack_template,
    template_parameters,
)
from image_pipeline.settings import Settings, get_settings

logger = logging.getLogger(__name__)


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
    if storage is None or storage.status not in GOOD_STATES:
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
            name, arn = API_HANDLERS[resource_type](f"{STACK_NAME}-{logical_id}", props)
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
