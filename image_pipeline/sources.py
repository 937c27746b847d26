"""The uploaded objects in S3: which version a run is about, listing, and the one download."""

from __future__ import annotations

from botocore.exceptions import ClientError

from image_pipeline.aws import GONE, client, error_code
from image_pipeline.errors import Superseded
from image_pipeline.models import SourceObject

# 412: the object was re-uploaded since the version asked for.
_CHANGED = GONE | {"PreconditionFailed", "412"}


def normalize_etag(etag: str | None) -> str | None:
    """S3 quotes ETags in headers but EventBridge events carry them bare."""
    return etag.strip('"') if etag else etag


def head_source(bucket: str, key: str, etag: str | None) -> SourceObject:
    """The object as it is now; `Superseded` when it is gone or no longer has `etag`."""
    try:
        head = client("s3").head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if error_code(exc) in GONE:
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


def download(source: SourceObject) -> bytes:
    """The object's bytes, only if it still has the ETag the run is about."""
    try:
        response = client("s3").get_object(
            Bucket=source.bucket, Key=source.key, IfMatch=f'"{source.etag}"'
        )
    except ClientError as exc:
        # Re-uploaded or deleted since: a newer event covers either case.
        if error_code(exc) in _CHANGED:
            raise Superseded(
                f"s3://{source.bucket}/{source.key} changed since ETag {source.etag}."
            ) from exc
        raise
    return response["Body"].read()
