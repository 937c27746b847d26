"""Create the pipeline's AWS resources where they are missing (idempotent).

Used for the local emulator and by tests. On real AWS, the CloudFormation template
in `deployments/aws/` is the source of truth; both describe the same table.
"""

from __future__ import annotations

from botocore.exceptions import ClientError

from tasks.aws import client
from tasks.settings import Settings, get_settings

STATUS_INDEX = "status-updated_at-index"

TABLE_DEFINITION = {
    "AttributeDefinitions": [
        {"AttributeName": "ImageKey", "AttributeType": "S"},
        {"AttributeName": "overall_processing_status", "AttributeType": "S"},
        {"AttributeName": "updated_at", "AttributeType": "N"},
    ],
    "KeySchema": [{"AttributeName": "ImageKey", "KeyType": "HASH"}],
    "GlobalSecondaryIndexes": [
        {
            "IndexName": STATUS_INDEX,
            "KeySchema": [
                {"AttributeName": "overall_processing_status", "KeyType": "HASH"},
                {"AttributeName": "updated_at", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "ALL"},
        }
    ],
    "BillingMode": "PAY_PER_REQUEST",
}


def provision(settings: Settings | None = None) -> str:
    """Ensure buckets, table and topic exist; return the topic ARN."""
    settings = settings or get_settings()
    for bucket in (settings.uploads_bucket, settings.thumbnails_bucket):
        _ensure_bucket(bucket, settings.aws_region)
    _ensure_table(settings.table_name)
    return client("sns").create_topic(Name=settings.topic_name)["TopicArn"]


def _ensure_bucket(name: str, region: str) -> None:
    s3 = client("s3")
    extra = (
        {}
        if region == "us-east-1"
        else {"CreateBucketConfiguration": {"LocationConstraint": region}}
    )
    try:
        s3.create_bucket(Bucket=name, **extra)
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise


def _ensure_table(name: str) -> None:
    dynamodb = client("dynamodb")
    try:
        dynamodb.create_table(TableName=name, **TABLE_DEFINITION)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceInUseException":
            raise
    dynamodb.get_waiter("table_exists").wait(
        TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30}
    )


if __name__ == "__main__":
    print(provision())
