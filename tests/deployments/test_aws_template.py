"""The CloudFormation template, and the local stack MiniStack builds from it.

- the template passes cfn-lint;
- its IAM policies name only the resources they need, the status API's only reads, and
  listings of the uploads bucket stay under the uploads prefix;
- both buckets refuse requests without TLS, and the topic is encrypted at rest;
- the resources the local bootstrap creates on MiniStack match what the template declares
  (drift guard), also after a restart on persisted state and when the resources already
  existed outside the stack;
- the real event path works: an upload under the prefix reaches an HTTP receiver as
  EventBridge's POST with the `x-api-key` header; an upload outside it does not.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import cfn_yaml

from deployments.local import processes
from deployments.local.cloudformation import describe_stack
from deployments.local.event_path import EventPath, remove_event_path
from deployments.local.provision import provision, provision_event_path
from deployments.local.template import (
    API_TYPES,
    EVENT_PATH_TYPES,
    EVENTS_STACK_NAME,
    STACK_NAME,
    STORAGE_TYPES,
    TEMPLATE_PATH,
    check_classified,
    load_template,
    resolve,
    resources_of,
    template_parameters,
)
from image_pipeline.aws import client
from image_pipeline.catalog import STATUS_INDEX
from image_pipeline.settings import get_settings

API_KEY = "test-webhook-key-0123456789"
TIMEOUT = 30.0


# --- The template itself ---------------------------------------------------------------


def test_cfn_lint_passes() -> None:
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    result = subprocess.run(
        [str(cfn_lint), "--", str(TEMPLATE_PATH)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    """The template as cfn-lint reads it (short-form tags expanded)."""
    return cfn_yaml.load(str(TEMPLATE_PATH))


def test_bootstrap_reads_the_template_as_cfn_lint_does(template: dict[str, Any]) -> None:
    assert load_template() == template


def test_every_resource_type_has_exactly_one_local_path(template: dict[str, Any]) -> None:
    groups = [STORAGE_TYPES, EVENT_PATH_TYPES, frozenset(API_TYPES)]
    for resource in template["Resources"].values():
        assert sum(resource["Type"] in group for group in groups) == 1, resource["Type"]
    check_classified(template)


def test_template_declares_what_the_pipeline_needs(template: dict[str, Any]) -> None:
    settings = get_settings()
    parameters = template["Parameters"]
    assert parameters["WebhookApiKey"]["NoEcho"] is True
    for name, value in template_parameters(settings).items():
        assert parameters[name]["Default"] == value, name
    resources = template["Resources"]
    assert resources["UploadsBucket"]["Properties"]["NotificationConfiguration"] == {
        "EventBridgeConfiguration": {"EventBridgeEnabled": True}
    }
    connection = resources["WebhookConnection"]["Properties"]
    assert connection["AuthorizationType"] == "API_KEY"
    assert connection["AuthParameters"]["ApiKeyAuthParameters"]["ApiKeyName"] == "x-api-key"
    target = resources["UploadsRule"]["Properties"]["Targets"][0]
    assert target["Arn"] == {"Fn::GetAtt": ["WebhookDestination", "Arn"]}
    assert {"RetryPolicy", "DeadLetterConfig", "RoleArn"} <= set(target)
    assert set(template["Outputs"]) >= {
        "UploadsBucketName",
        "ThumbnailsBucketName",
        "TableName",
        "TopicArn",
        "WorkerPolicyArn",
        "ApiPolicyArn",
        "ApiDestinationArn",
    }


# --- Least privilege -------------------------------------------------------------------


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _policy_documents(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for logical_id, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        if "PolicyDocument" in props:
            yield logical_id, props["PolicyDocument"]
        for policy in props.get("Policies", []):
            yield f"{logical_id}/{policy['PolicyName']}", policy["PolicyDocument"]


def _grants(document: dict[str, Any]) -> dict[str, list[Any]]:
    """Action -> the resources the document allows it on."""
    grants: dict[str, list[Any]] = {}
    for statement in document["Statement"]:
        assert "NotAction" not in statement and "NotResource" not in statement
        if statement["Effect"] != "Allow":
            continue
        for action in _as_list(statement["Action"]):
            grants.setdefault(action, []).extend(_as_list(statement["Resource"]))
    return grants


def _sub(text: str) -> dict[str, str]:
    return {"Fn::Sub": text}


def _att(logical_id: str) -> dict[str, list[str]]:
    return {"Fn::GetAtt": [logical_id, "Arn"]}


def _is_deny_insecure_transport(statement: dict[str, Any], bucket: str) -> bool:
    return (
        statement["Effect"] == "Deny"
        and statement.get("Principal") == "*"
        and _as_list(statement["Action"]) == ["s3:*"]
        and sorted(_as_list(statement["Resource"]), key=str)
        == sorted([_att(bucket), _sub(f"${{{bucket}.Arn}}/*")], key=str)
        and statement.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
    )


def _bucket_policies(template: dict[str, Any]) -> dict[str, str]:
    """Bucket policy logical id -> the logical id of its bucket."""
    return {
        logical_id: resource["Properties"]["Bucket"]["Ref"]
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::S3::BucketPolicy"
    }


def test_policies_name_only_the_resources_they_need(template: dict[str, Any]) -> None:
    documents = dict(_policy_documents(template))
    assert set(documents) == {
        "PipelineWorkerPolicy",
        "PipelineApiPolicy",
        "WebhookInvokeRole/invoke-webhook-api-destination",
        "WebhookDeadLetterQueuePolicy",
        "UploadsBucketPolicy",
        "ThumbnailsBucketPolicy",
    }
    buckets = _bucket_policies(template)
    for name, document in documents.items():
        for action, resources in _grants(document).items():
            assert "*" not in action, f"{name}: wildcard action {action}"
            if not action.startswith("rekognition:Detect"):
                assert "*" not in resources, f"{name}: {action} on every resource"
        # The only denials are the buckets' refusals of plain HTTP.
        for statement in document["Statement"]:
            if statement["Effect"] != "Allow":
                assert name in buckets and _is_deny_insecure_transport(statement, buckets[name])

    sub, att = _sub, _att
    table = [att("ImageTable"), sub("${ImageTable.Arn}/index/*")]
    thumbnails = [
        sub("${ThumbnailsBucket.Arn}/thumbnails/*"),
        sub("${ThumbnailsBucket.Arn}/quarantine/*"),
    ]
    assert _grants(documents["PipelineWorkerPolicy"]) == {
        "s3:GetObject": [
            sub("${UploadsBucket.Arn}/${UploadsPrefix}*"),
            sub("${ThumbnailsBucket.Arn}/thumbnails/*"),
            sub("${ThumbnailsBucket.Arn}/quarantine/*"),
        ],
        "s3:ListBucket": [att("UploadsBucket"), att("ThumbnailsBucket")],
        "s3:PutObject": thumbnails,
        "s3:DeleteObject": thumbnails,
        "dynamodb:DescribeTable": table,
        "dynamodb:GetItem": table,
        "dynamodb:PutItem": table,
        "dynamodb:UpdateItem": table,
        "dynamodb:Query": table,
        "sns:Publish": [{"Ref": "NotificationTopic"}],
        "rekognition:DetectLabels": ["*"],  # IAM has no resource type for it
        "rekognition:DetectModerationLabels": ["*"],
    }
    assert _grants(documents["WebhookInvokeRole/invoke-webhook-api-destination"]) == {
        "events:InvokeApiDestination": [att("WebhookDestination")]
    }
    (queue_statement,) = documents["WebhookDeadLetterQueuePolicy"]["Statement"]
    assert _grants(documents["WebhookDeadLetterQueuePolicy"]) == {
        "sqs:SendMessage": [att("WebhookDeadLetterQueue")]
    }
    assert queue_statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert queue_statement["Condition"] == {"ArnEquals": {"aws:SourceArn": att("UploadsRule")}}
    trust = template["Resources"]["WebhookInvokeRole"]["Properties"]["AssumeRolePolicyDocument"]
    (trust_statement,) = trust["Statement"]
    assert trust_statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert trust_statement["Action"] == "sts:AssumeRole"


# Verbs of actions that change something (or act as someone): the API policy has none.
_WRITE_VERBS = (
    "Put",
    "Update",
    "Delete",
    "Create",
    "Publish",
    "BatchWrite",
    "Write",
    "Restore",
    "Copy",
    "Replicate",
    "Abort",
    "Tag",
    "Untag",
    "Send",
    "Start",
    "Invoke",
    "Execute",
    "Set",
    "Pass",
)
_READ_VERBS = ("Get", "Describe", "List", "Query")


def test_the_api_policy_only_reads(template: dict[str, Any]) -> None:
    document = template["Resources"]["PipelineApiPolicy"]["Properties"]["PolicyDocument"]
    grants = _grants(document)
    for action in grants:
        verb = action.split(":", 1)[1]
        assert not verb.startswith(_WRITE_VERBS), f"the API may {action}"
        assert verb.startswith(_READ_VERBS), f"{action} is not known to be a read"
    assert all(statement["Effect"] == "Allow" for statement in document["Statement"])
    indexes = template["Resources"]["ImageTable"]["Properties"]["GlobalSecondaryIndexes"]
    assert STATUS_INDEX in [index["IndexName"] for index in indexes]
    table = [
        _att("ImageTable"),
        _sub(f"${{ImageTable.Arn}}/index/{STATUS_INDEX}"),
        _sub("${ImageTable.Arn}/index/dhash-band-*-index"),
    ]
    assert grants == {
        # HeadObject is authorised as s3:GetObject.
        "s3:GetObject": [_sub("${UploadsBucket.Arn}/${UploadsPrefix}*")],
        "s3:ListBucket": [_att("UploadsBucket")],
        "dynamodb:DescribeTable": table,
        "dynamodb:GetItem": table,
        "dynamodb:Query": table,
    }
    assert template["Outputs"]["ApiPolicyArn"]["Value"] == {"Ref": "PipelineApiPolicy"}


def test_listing_stays_under_the_prefixes(template: dict[str, Any]) -> None:
    """Uploads are listed under the uploads prefix; thumbnails under the two folders."""
    allowed = {
        "UploadsBucket": {"s3:prefix": _sub("${UploadsPrefix}*")},
        "ThumbnailsBucket": {"s3:prefix": ["thumbnails/*", "quarantine/*"]},
    }
    listed = []
    for name, document in _policy_documents(template):
        for statement in document["Statement"]:
            if "s3:ListBucket" in _as_list(statement["Action"]) and statement["Effect"] == "Allow":
                bucket = statement["Resource"]["Fn::GetAtt"][0]
                listed.append((name, bucket))
                assert statement["Condition"] == {"StringLike": allowed[bucket]}, name
    assert sorted(listed) == [
        ("PipelineApiPolicy", "UploadsBucket"),
        ("PipelineWorkerPolicy", "ThumbnailsBucket"),  # moderation withdraws the other set
        ("PipelineWorkerPolicy", "UploadsBucket"),
    ]


def test_every_bucket_refuses_plain_http(template: dict[str, Any]) -> None:
    buckets = {
        logical_id
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::S3::Bucket"
    }
    assert len(buckets) == 2
    policies = _bucket_policies(template)
    assert sorted(policies.values()) == sorted(buckets)  # one policy per bucket
    for policy, bucket in policies.items():
        statements = template["Resources"][policy]["Properties"]["PolicyDocument"]["Statement"]
        assert any(_is_deny_insecure_transport(s, bucket) for s in statements), policy


def test_the_topic_is_encrypted_at_rest(template: dict[str, Any]) -> None:
    topic = template["Resources"]["NotificationTopic"]["Properties"]
    assert topic["KmsMasterKeyId"] == "alias/aws/sns"
    # The AWS-managed key's own policy lets the account's publishers use it through SNS.
    for name, document in _policy_documents(template):
        assert not any(action.startswith("kms:") for action in _grants(document)), name


# --- A receiver for the webhook --------------------------------------------------------


@dataclass
class Received:
    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)


class Receiver:
    """A stdlib HTTP server on 127.0.0.1 that records every request and answers 200."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self._changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver._changed:
                    receiver.requests.append(
                        Received(self.command, self.path, list(self.headers.items()), body)
                    )
                    receiver._changed.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/events/s3"

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def wait_for(self, condition: Callable[[list[Received]], bool], timeout: float) -> None:
        with self._changed:
            if not self._changed.wait_for(lambda: condition(self.requests), timeout):
                raise AssertionError(f"within {timeout} s the receiver got {self.requests}")


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    server = Receiver().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def event_path(aws_stack: str, receiver: Receiver) -> Iterator[EventPath]:
    try:
        yield provision_event_path(receiver.url, API_KEY)
    finally:
        remove_event_path()


# --- Drift guard -----------------------------------------------------------------------


def check_storage_matches_template(topic_arn: str) -> None:
    """The buckets and their policies, the table, the topic and the managed policies on
    the emulator are the template's."""
    settings = get_settings()
    template = load_template()
    parameters = template_parameters(settings)
    resources = resolve(template["Resources"], parameters)
    s3, dynamodb, iam = client("s3"), client("dynamodb"), client("iam")

    for logical_id, bucket in (
        ("UploadsBucket", settings.uploads_bucket),
        ("ThumbnailsBucket", settings.thumbnails_bucket),
    ):
        props = resources[logical_id]["Properties"]
        assert props["BucketName"] == bucket
        eventbridge = (
            props.get("NotificationConfiguration", {})
            .get("EventBridgeConfiguration", {})
            .get("EventBridgeEnabled", False)
        )
        notifications = s3.get_bucket_notification_configuration(Bucket=bucket)
        assert ("EventBridgeConfiguration" in notifications) is eventbridge, bucket
        (rule,) = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"][
            "Rules"
        ]
        (declared,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert (
            rule["ApplyServerSideEncryptionByDefault"] == declared["ServerSideEncryptionByDefault"]
        )
        block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
        assert block == props["PublicAccessBlockConfiguration"]
    assert resources["UploadsBucket"]["Properties"]["NotificationConfiguration"]

    props = resources["ImageTable"]["Properties"]
    table = dynamodb.describe_table(TableName=settings.table_name)["Table"]
    assert table["KeySchema"] == props["KeySchema"]
    assert sorted(table["AttributeDefinitions"], key=str) == sorted(
        props["AttributeDefinitions"], key=str
    )
    assert table["BillingModeSummary"]["BillingMode"] == props["BillingMode"]
    # In any order: a stack update adds indexes in an order of its own.
    assert sorted(
        (
            {k: index[k] for k in ("IndexName", "KeySchema", "Projection")}
            for index in table["GlobalSecondaryIndexes"]
        ),
        key=lambda index: index["IndexName"],
    ) == sorted(props["GlobalSecondaryIndexes"], key=lambda index: index["IndexName"])
    assert STATUS_INDEX in [i["IndexName"] for i in props["GlobalSecondaryIndexes"]]
    # Not compared: PointInTimeRecoverySpecification. MiniStack's CloudFormation accepts
    # it but does not apply it (DescribeContinuousBackups answers DISABLED).

    assert topic_arn.rsplit(":", 1)[-1] == resources["NotificationTopic"]["Properties"]["TopicName"]
    client("sns").get_topic_attributes(TopicArn=topic_arn)
    # Not compared: KmsMasterKeyId. MiniStack's CloudFormation accepts it but does not
    # apply it (GetTopicAttributes has no KmsMasterKeyId).

    stack = describe_stack(STACK_NAME)
    assert stack is not None
    assert set(stack.physical_ids) == set(resources_of(template, STORAGE_TYPES))
    arns = {
        "UploadsBucket.Arn": f"arn:aws:s3:::{settings.uploads_bucket}",
        "ThumbnailsBucket.Arn": f"arn:aws:s3:::{settings.thumbnails_bucket}",
        "ImageTable.Arn": table["TableArn"],
        "NotificationTopic": topic_arn,
        "AWS::Partition": "aws",
    }

    # Every managed policy, through the output that hands it out.
    policy_outputs = {
        name: output["Value"]["Ref"]
        for name, output in template["Outputs"].items()
        if resources.get(output["Value"].get("Ref", ""), {}).get("Type")
        == "AWS::IAM::ManagedPolicy"
    }
    assert sorted(policy_outputs.values()) == sorted(
        resources_of(template, ["AWS::IAM::ManagedPolicy"])
    )
    for output_name, logical_id in policy_outputs.items():
        policy_arn = stack.outputs[output_name]
        version = iam.get_policy(PolicyArn=policy_arn)["Policy"]["DefaultVersionId"]
        document = iam.get_policy_version(PolicyArn=policy_arn, VersionId=version)["PolicyVersion"][
            "Document"
        ]
        if isinstance(document, str):
            document = json.loads(document)
        assert document == resolve(resources[logical_id]["Properties"], arns)["PolicyDocument"]

    for logical_id, resource in resources_of(template, ["AWS::S3::BucketPolicy"]).items():
        bucket = resources[resource["Properties"]["Bucket"]["Ref"]]["Properties"]["BucketName"]
        policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
        assert policy == resolve(resources[logical_id]["Properties"], arns)["PolicyDocument"]


def check_event_path_matches_template(path: EventPath, webhook_url: str) -> None:
    """The rule, its target, the connection and the API destination are the template's."""
    settings = get_settings()
    template = load_template()
    resources = resolve(
        template["Resources"],
        template_parameters(settings) | {"UploadsBucket": settings.uploads_bucket},
    )
    events, sqs = client("events"), client("sqs")

    declared_rule = resources["UploadsRule"]["Properties"]
    rule = events.describe_rule(Name=path.rule_name)
    assert json.loads(rule["EventPattern"]) == declared_rule["EventPattern"]
    assert json.loads(rule["EventPattern"]) == {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {
            "bucket": {"name": [settings.uploads_bucket]},
            "object": {"key": [{"prefix": settings.uploads_prefix}]},
        },
    }
    assert rule["State"] == declared_rule["State"]
    (target,) = events.list_targets_by_rule(Rule=path.rule_name)["Targets"]
    (declared_target,) = declared_rule["Targets"]
    assert target["Id"] == declared_target["Id"]
    assert target["Arn"] == path.api_destination_arn
    assert target["RetryPolicy"] == declared_target["RetryPolicy"]
    queue_arn = sqs.get_queue_attributes(
        QueueUrl=path.dead_letter_queue_url, AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    assert target["DeadLetterConfig"] == {"Arn": queue_arn}
    events_stack = describe_stack(EVENTS_STACK_NAME)
    assert events_stack is not None
    assert set(events_stack.physical_ids) == set(resources_of(template, EVENT_PATH_TYPES))
    role = client("iam").get_role(RoleName=events_stack.physical_ids["WebhookInvokeRole"])
    assert target["RoleArn"] == role["Role"]["Arn"]

    declared_connection = resources["WebhookConnection"]["Properties"]
    connection = events.describe_connection(Name=path.connection_arn.rsplit("/", 1)[-1])
    assert connection["ConnectionState"] == "AUTHORIZED"
    assert connection["AuthorizationType"] == declared_connection["AuthorizationType"] == "API_KEY"
    assert (
        connection["AuthParameters"]["ApiKeyAuthParameters"]["ApiKeyName"]
        == declared_connection["AuthParameters"]["ApiKeyAuthParameters"]["ApiKeyName"]
        == "x-api-key"
    )

    declared_destination = resources["WebhookDestination"]["Properties"]
    destination = events.describe_api_destination(Name=path.api_destination_arn.rsplit("/", 1)[-1])
    assert destination["ApiDestinationState"] == "ACTIVE"
    assert destination["ConnectionArn"] == path.connection_arn
    assert destination["HttpMethod"] == declared_destination["HttpMethod"] == "POST"
    assert destination["InvocationEndpoint"] == webhook_url
    assert (
        destination["InvocationRateLimitPerSecond"]
        == declared_destination["InvocationRateLimitPerSecond"]
    )


def test_local_resources_match_the_template(
    aws_stack: str, event_path: EventPath, receiver: Receiver
) -> None:
    check_storage_matches_template(aws_stack)
    check_event_path_matches_template(event_path, receiver.url)


def test_provisioning_again_changes_nothing(
    aws_stack: str, event_path: EventPath, receiver: Receiver
) -> None:
    started = time.monotonic()
    assert provision() == aws_stack
    assert provision_event_path(receiver.url, API_KEY) == event_path
    assert time.monotonic() - started < 10
    check_storage_matches_template(aws_stack)
    check_event_path_matches_template(event_path, receiver.url)


# --- The real event path ---------------------------------------------------------------


def test_uploads_under_the_prefix_reach_the_webhook(
    aws_stack: str, event_path: EventPath, receiver: Receiver
) -> None:
    settings = get_settings()
    s3 = client("s3")
    inside = f"{settings.uploads_prefix}x y+z.jpg"
    outside = "elsewhere/x y+z.jpg"
    receiver.requests.clear()
    # The upload outside the prefix goes first: once both later ones have arrived, it
    # would have arrived too had the rule let it through.
    s3.put_object(Bucket=settings.uploads_bucket, Key=outside, Body=b"not processed")
    etag = s3.put_object(Bucket=settings.uploads_bucket, Key=inside, Body=b"processed")["ETag"]
    sentinel = f"{settings.uploads_prefix}sentinel.jpg"
    s3.put_object(Bucket=settings.uploads_bucket, Key=sentinel, Body=b"last")

    receiver.wait_for(lambda requests: len(requests) >= 2, timeout=TIMEOUT)
    by_key = {request.event["detail"]["object"]["key"]: request for request in receiver.requests}
    assert sorted(by_key) == sorted([inside, sentinel])

    request = by_key[inside]
    assert request.method == "POST"
    assert request.path == "/events/s3"
    assert request.header("x-api-key") == API_KEY
    assert request.header("User-Agent") == "Amazon/EventBridge/ApiDestinations"
    assert (request.header("Content-Type") or "").startswith("application/json")
    event = request.event
    assert event["source"] == "aws.s3"
    assert event["detail-type"] == "Object Created"
    assert event["detail"]["bucket"]["name"] == settings.uploads_bucket
    assert event["detail"]["object"]["key"] == inside  # raw, not URL-encoded
    assert event["detail"]["object"]["size"] == len(b"processed")
    assert event["detail"]["object"]["etag"] == etag.strip('"')  # bare, S3's header quotes it
    assert event["detail"]["object"]["sequencer"]


# --- Existing state: persisted, or made outside the stack ------------------------------


def _point_at(url: str, configure: Callable[..., None], monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("IMAGE_PIPELINE_AWS_CREDENTIALS_BLOCK", raising=False)
    configure(aws_endpoint_url=url)


@contextlib.contextmanager
def other_ministack(
    configure: Callable[..., None],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    state_dir: Path | None = None,
) -> Iterator[str]:
    """A MiniStack of its own (so the session's stays untouched), the pipeline pointed at it."""
    with processes.ministack(
        processes.free_port(), log_path=tmp_path / "ministack.log", state_dir=state_dir
    ) as url:
        _point_at(url, configure, monkeypatch)
        yield url


def _create_the_old_way() -> None:
    """What the boto3-only provisioning of earlier versions made, with some data in it."""
    settings = get_settings()
    s3, dynamodb = client("s3"), client("dynamodb")
    for bucket in (settings.uploads_bucket, settings.thumbnails_bucket):
        s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=settings.uploads_bucket, Key="uploads/old.jpg", Body=b"old")
    table = load_template()["Resources"]["ImageTable"]["Properties"]
    dynamodb.create_table(
        TableName=settings.table_name,
        **{
            key: table[key]
            for key in ("AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes")
        },
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.put_item(TableName=settings.table_name, Item={"ImageKey": {"S": "uploads/old.jpg"}})
    client("sns").create_topic(Name=settings.topic_name)


def test_adopts_resources_that_exist_outside_the_stack(
    configure: Callable[..., None], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with other_ministack(configure, monkeypatch, tmp_path):
        settings = get_settings()
        _create_the_old_way()
        topic_arn = provision()
        check_storage_matches_template(topic_arn)
        assert client("s3").get_object(Bucket=settings.uploads_bucket, Key="uploads/old.jpg")[
            "Body"
        ].read() == (b"old")
        item = client("dynamodb").get_item(
            TableName=settings.table_name, Key={"ImageKey": {"S": "uploads/old.jpg"}}
        )
        assert "Item" in item
        assert provision() == topic_arn


def test_restarts_on_persisted_state(
    configure: Callable[..., None], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    url = "http://127.0.0.1:9/events/s3"
    with other_ministack(configure, monkeypatch, tmp_path, state):
        topic_arn = provision()
        path = provision_event_path(url, API_KEY)
        client("s3").put_object(
            Bucket=get_settings().uploads_bucket, Key="uploads/kept.jpg", Body=b"kept"
        )
    # Stopped gracefully (state saved), then started again on the same state.
    with other_ministack(configure, monkeypatch, tmp_path, state):
        assert provision() == topic_arn
        assert provision_event_path(url, API_KEY) == path
        check_storage_matches_template(topic_arn)
        check_event_path_matches_template(path, url)
        assert client("s3").head_object(
            Bucket=get_settings().uploads_bucket, Key="uploads/kept.jpg"
        )


def test_recovers_after_an_unclean_stop(
    configure: Callable[..., None], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Killed: only S3's objects were on disk, so the buckets come back without a stack."""
    state = tmp_path / "state"
    port = processes.free_port()
    log = tmp_path / "ministack.log"
    env = processes.ministack_env(port, state)
    process = processes.start([str(processes.MINISTACK_BIN)], log_path=log, env=env)
    try:
        url = f"http://127.0.0.1:{port}"
        processes.wait_until(
            lambda: processes.http_ok(f"{url}/_ministack/health"), timeout=60, what="MiniStack"
        )
        _point_at(url, configure, monkeypatch)
        provision()
        client("s3").put_object(
            Bucket=get_settings().uploads_bucket, Key="uploads/kept.jpg", Body=b"kept"
        )
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    with other_ministack(configure, monkeypatch, tmp_path, state):
        assert describe_stack(STACK_NAME) is None  # nothing but S3 survived
        topic_arn = provision()
        check_storage_matches_template(topic_arn)
        assert client("s3").head_object(
            Bucket=get_settings().uploads_bucket, Key="uploads/kept.jpg"
        )


def test_a_table_from_before_near_duplicate_search_gets_its_indexes(
    configure: Callable[..., None], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`make up` on a state kept from before: the stack update adds the new indexes."""
    import deployments.local.provision as provisioning

    def old_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
        template = load_template(path)
        table = template["Resources"]["ImageTable"]["Properties"]
        table["GlobalSecondaryIndexes"] = [
            index for index in table["GlobalSecondaryIndexes"] if index["IndexName"] == STATUS_INDEX
        ]
        used = {"ImageKey", "overall_processing_status", "updated_at"}
        table["AttributeDefinitions"] = [
            a for a in table["AttributeDefinitions"] if a["AttributeName"] in used
        ]
        return template

    with other_ministack(configure, monkeypatch, tmp_path):
        with monkeypatch.context() as patch:
            patch.setattr(provisioning, "load_template", old_template)
            provision()
        table = client("dynamodb").describe_table(TableName=get_settings().table_name)["Table"]
        assert [i["IndexName"] for i in table["GlobalSecondaryIndexes"]] == [STATUS_INDEX]

        check_storage_matches_template(provision())
