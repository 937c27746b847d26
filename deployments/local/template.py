"""The CloudFormation template, and how the local emulator deploys it in parts.

`deployments/aws/template.yaml` is the one definition of the AWS side. On real AWS it is
deployed as one stack. MiniStack's CloudFormation refuses two of its resource types, so
locally it is deployed in parts (see `deployments.local.provision`): every template
resource type is in exactly one of the allow-lists below; a type added to the template
without being placed here is an error, not a silently skipped resource.

The template's parameter constraints (HTTPS-only `WebhookUrl`) apply on AWS, not here:
locally the webhook is `http://127.0.0.1:<api_port>/events/s3`.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from image_pipeline.settings import Settings

TEMPLATE_PATH = Path(__file__).resolve().parents[1] / "aws" / "template.yaml"

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
            "deployments/local/template.py."
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
                # The list form's own variables are names of that map, not of the template.
                local = set(arg[1]) if isinstance(arg, list) else set()
                found |= {name.split(".")[0] for name in _SUB_VARIABLE.findall(text)} - local
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
