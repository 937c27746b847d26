"""Which version of the uploaded object this run is about."""

from __future__ import annotations

from botocore.exceptions import ClientError
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.aws import client, error_code
from tasks.errors import Superseded
from tasks.models import SourceObject
from tasks.retry import TRANSIENT_RETRIES


def normalize_etag(etag: str | None) -> str | None:
    """S3 quotes ETags in headers but EventBridge events carry them bare."""
    return etag.strip('"') if etag else etag


def head_source(bucket: str, key: str, etag: str | None) -> SourceObject:
    """The object as it is now; `Superseded` when it is gone or no longer has `etag`."""
    try:
        head = client("s3").head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
            raise Superseded(f"s3://{bucket}/{key} no longer exists.") from exc
        raise
    current = normalize_etag(head["ETag"])
    if etag and normalize_etag(etag) != current:
        raise Superseded(
            f"s3://{bucket}/{key} was replaced: this run is for ETag {normalize_etag(etag)}, "
            f"the object now has {current}."
        )
    return SourceObject(
        bucket=bucket,
        key=key,
        etag=current,
        size=head["ContentLength"],
        last_modified=head["LastModified"],
    )


@task(name="source", **TRANSIENT_RETRIES, cache_policy=NO_CACHE, persist_result=False)
def describe_source(bucket: str, key: str, etag: str | None) -> SourceObject:
    return head_source(bucket, key, etag)


@task(name="list-sources", **TRANSIENT_RETRIES, cache_policy=NO_CACHE, persist_result=False)
def list_sources(bucket: str, prefix: str) -> list[SourceObject]:
    """Every object under `prefix`, as S3 lists it (no HEAD per object needed)."""
    pages = client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [
        SourceObject(
            bucket=bucket,
            key=obj["Key"],
            etag=normalize_etag(obj["ETag"]) or "",
            size=obj["Size"],
            last_modified=obj["LastModified"],
        )
        for page in pages
        for obj in page.get("Contents", [])
        if not obj["Key"].endswith("/")  # folder placeholders
    ]
