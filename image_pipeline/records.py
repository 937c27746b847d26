"""The image's DynamoDB item and its lifecycle: PROCESSING, then COMPLETED or FAILED.

Attribute names are the original system's, so existing readers keep working. Every
write is conditional, so that a run about an older upload can never overwrite the
record of a newer one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from image_pipeline.aws import client, error_code
from image_pipeline.duplicates import INDEX_ATTRIBUTES, record_fields
from image_pipeline.errors import Superseded
from image_pipeline.keys import MAX_KEY_BYTES
from image_pipeline.models import (
    Fingerprint,
    Labels,
    Moderation,
    Placeholder,
    SourceObject,
    Thumbnail,
)
from image_pipeline.settings import get_settings

PROCESSING, COMPLETED, FAILED = "PROCESSING", "COMPLETED", "FAILED"

# How long a run's claim on a version keeps other runs of the same version away
# (`claim_expires_at`). S3 and EventBridge deliver at least once, and a duplicate may arrive
# in another batch while the first run still works. A crashed run's hook releases its
# claims; one that dies without its hook frees the image after this, when
# reconcile-stuck-images also looks at it.
CLAIM_LEASE_SECONDS = 600

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def to_dynamo(value: Any) -> dict[str, Any]:
    # DynamoDB numbers must be Decimal; a JSON round trip turns every float into one.
    return _serializer.serialize(json.loads(json.dumps(value), parse_float=Decimal))


def from_dynamo(item: dict[str, Any]) -> dict[str, Any]:
    return {name: _plain(_deserializer.deserialize(value)) for name, value in item.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | set | tuple):
        return [_plain(v) for v in value]
    return value


def _now() -> tuple[int, str]:
    now = time.time()
    return int(now), datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds")


def read_item(key: str) -> dict[str, Any] | None:
    """The item of `key`, or None; the one read of a record, for the API and the steps alike."""
    # DynamoDB refuses empty and over-long keys with an error; no image can have them.
    if not key or len(key.encode()) > MAX_KEY_BYTES:
        return None
    response = client("dynamodb").get_item(
        TableName=get_settings().table_name, Key={"ImageKey": {"S": key}}, ConsistentRead=True
    )
    return from_dynamo(response["Item"]) if "Item" in response else None


def _update(
    key: str,
    fields: dict[str, Any],
    *,
    condition: str,
    values: dict[str, Any],
    add_attempt: bool = False,
    keep_created: bool = True,
    remove: tuple[str, ...] = (),
) -> dict[str, Any] | None:
    """SET `fields` on the item if `condition` holds: the new item, or None when it does not."""
    epoch, iso = _now()
    fields = {**fields, "updated_at": epoch, "updated_at_iso": iso}
    names = {f"#f{i}": name for i, name in enumerate(fields)}
    expr_values = {f":f{i}": to_dynamo(value) for i, value in enumerate(fields.values())}
    sets = [f"#f{i} = :f{i}" for i in range(len(fields))]
    if keep_created:
        names |= {"#created": "created_at", "#created_iso": "created_at_iso"}
        expr_values |= {":created": to_dynamo(epoch), ":created_iso": to_dynamo(iso)}
        sets += [
            "#created = if_not_exists(#created, :created)",
            "#created_iso = if_not_exists(#created_iso, :created_iso)",
        ]
    expression = "SET " + ", ".join(sets)
    if add_attempt:
        names["#attempts"] = "attempts"
        expr_values[":one"] = to_dynamo(1)
        expression += " ADD #attempts :one"
    if remove:
        names |= {f"#r{i}": name for i, name in enumerate(remove)}
        expression += " REMOVE " + ", ".join(f"#r{i}" for i in range(len(remove)))
    try:
        response = client("dynamodb").update_item(
            TableName=get_settings().table_name,
            Key={"ImageKey": {"S": key}},
            UpdateExpression=expression,
            ConditionExpression=condition,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=expr_values | {k: to_dynamo(v) for k, v in values.items()},
            ReturnValues="ALL_NEW",
        )
    except ClientError as exc:
        if error_code(exc) == "ConditionalCheckFailedException":
            return None
        raise
    return from_dynamo(response["Attributes"])


_ERROR_FIELDS = ("error_type", "error_message", "failed_step")


def mark_processing(source: SourceObject, flow_run_id: str) -> dict[str, Any] | None:
    """Claim the item for this run; None when a newer upload owns it, or when another run
    claimed this very version and its claim has not expired (a duplicate delivery)."""
    now = time.time()
    return _update(
        source.key,
        {
            "s3_bucket_original": source.bucket,
            "s3_key_original": source.key,
            "overall_processing_status": PROCESSING,
            "etag": source.etag,
            "source_last_modified": source.last_modified.timestamp(),
            "flow_run_id": flow_run_id,
            "claim_expires_at": int(now + CLAIM_LEASE_SECONDS),
        },
        condition="(attribute_not_exists(ImageKey) OR attribute_not_exists(source_last_modified)"
        " OR source_last_modified <= :last_modified)"
        " AND NOT (overall_processing_status = :processing AND etag = :etag"
        " AND flow_run_id <> :run AND claim_expires_at > :now)",
        values={
            ":last_modified": source.last_modified.timestamp(),
            ":processing": PROCESSING,
            ":etag": source.etag,
            ":run": flow_run_id,
            ":now": int(now),
        },
        add_attempt=True,
        # Out of the duplicate indexes until this version is COMPLETED: its pixels may differ.
        remove=_ERROR_FIELDS + INDEX_ATTRIBUTES,
    )


def release_claim(key: str, flow_run_id: str) -> dict[str, Any] | None:
    """End the claim of a run that will not finish (its process died), so that another run
    can take the image at once; None when that run no longer holds it."""
    return _update(
        key,
        {"claim_expires_at": 0},
        condition="overall_processing_status = :processing AND flow_run_id = :run",
        values={":processing": PROCESSING, ":run": flow_run_id},
    )


def mark_completed(
    source: SourceObject,
    flow_run_id: str,
    metadata: dict[str, Any],
    thumbnails: list[Thumbnail],
    labels: Labels,
    placeholder: Placeholder | None = None,
    fingerprint: Fingerprint | None = None,
    moderation: Moderation | None = None,
) -> dict[str, Any] | None:
    """Record the result; None when a newer upload took the item over meanwhile."""
    fields: dict[str, Any] = {
        "overall_processing_status": COMPLETED,
        "image_type": metadata["format"].lower(),
        "validation_status": "VALID",
        "thumbnails": {t.label: t.uri for t in thumbnails},
        "thumbnail_generation_status": COMPLETED,
        "extracted_metadata": {**metadata, "rekognition_labels": labels.labels},
        "metadata_extraction_status": COMPLETED,
        "labels_status": labels.status,
    }
    if placeholder is not None:
        fields |= placeholder.model_dump()
    if fingerprint is not None:
        fields |= record_fields(fingerprint)
    optional = {
        "rekognition_error": labels.error,
        "labels_skipped_reason": labels.reason,
        "labels_source": labels.source,
        "duplicate_of": fingerprint.duplicate_of if fingerprint else None,
    }
    optional |= _moderation_fields(moderation)
    return _update(
        source.key,
        fields | {k: v for k, v in optional.items() if v is not None},
        condition="etag = :etag AND flow_run_id = :run",
        values={":etag": source.etag, ":run": flow_run_id},
        remove=tuple(k for k, v in optional.items() if v is None),
    )


def _moderation_fields(moderation: Moderation | None) -> dict[str, Any]:
    """The moderation attributes; None for those to remove (left by an earlier version)."""
    if moderation is None:
        moderation = Moderation(status="SKIPPED")
    return {
        "moderation_status": moderation.status,
        "moderation_labels": moderation.labels,
        "moderation_source": moderation.source,
        "moderation_error": moderation.error,
        "moderation_skipped_reason": moderation.reason,
    }


def mark_failed(
    bucket: str,
    key: str,
    etag: str | None,
    flow_run_id: str,
    *,
    error_type: str,
    error_message: str,
    failed_step: str,
    failure_fields: Mapping[str, str] | None = None,
    stuck_since: int | None = None,
    only_if_unrecorded: bool = False,
) -> dict[str, Any] | None:
    """Record why the run failed, unless the item now belongs to another upload or run.

    A run records its failure on the item it claimed, on a new item, or over the failure of
    another run of the same version; never over a result, nor over another run's claim (that
    run is alive, or the reconciler will find it). With `stuck_since` (the reconciler's use),
    only the PROCESSING state of `flow_run_id` last updated at `stuck_since` is replaced;
    with `only_if_unrecorded`, only a missing item is written.
    Returns the new item, or None when nothing was written.
    """
    fields: dict[str, Any] = {
        "s3_bucket_original": bucket,
        "s3_key_original": key,
        "overall_processing_status": FAILED,
        "flow_run_id": flow_run_id,
        "error_type": error_type,
        "error_message": error_message[:2000],
        "failed_step": failed_step,
    }
    fields |= failure_fields or {}  # how the failed step labels it (pipeline.STEPS)
    if etag:
        fields["etag"] = etag
    if stuck_since is not None:
        return _update(
            key,
            fields,
            condition="overall_processing_status = :processing AND updated_at = :since"
            " AND (flow_run_id = :run OR attribute_not_exists(flow_run_id))",
            values={":processing": PROCESSING, ":run": flow_run_id, ":since": stuck_since},
        )
    if only_if_unrecorded:
        return _update(key, fields, condition="attribute_not_exists(ImageKey)", values={})
    return _update(
        key,
        fields,
        # Never over a COMPLETED item: a run that stored its result and then failed (say,
        # publishing its report) has still processed the image.
        condition="attribute_not_exists(ImageKey)"
        " OR (flow_run_id = :run AND overall_processing_status <> :completed)"
        " OR (overall_processing_status = :failed AND etag = :etag)",
        values={
            ":run": flow_run_id,
            ":failed": FAILED,
            ":completed": COMPLETED,
            ":etag": etag or "",
        },
    )


def claim(source: SourceObject, flow_run_id: str, *, force: bool = False) -> dict[str, Any] | None:
    """Mark the item PROCESSING. Returns the item instead when this version is already done
    (unless `force`: a backfill after a change of thumbnail sizes redoes finished work)."""
    existing = read_item(source.key)
    if (
        not force
        and existing
        and existing.get("etag") == source.etag
        and existing.get("overall_processing_status") == COMPLETED
    ):
        return existing
    if mark_processing(source, flow_run_id) is None:
        raise Superseded(f"a newer upload of {source.key}, or another run of it, owns its record")
    return None


def complete(
    source: SourceObject,
    flow_run_id: str,
    metadata: dict[str, Any],
    thumbnails: list[Thumbnail],
    labels: Labels,
    placeholder: Placeholder | None = None,
    fingerprint: Fingerprint | None = None,
    *,
    moderation: Moderation | None = None,
) -> dict[str, Any]:
    """Record the result; `Superseded` when a newer upload took the item over meanwhile."""
    item = mark_completed(
        source, flow_run_id, metadata, thumbnails, labels, placeholder, fingerprint, moderation
    )
    if item is None:
        raise Superseded(f"a newer upload of {source.key} took over its record")
    return item


def claim_generation(source: SourceObject, flow_run_id: str) -> int:
    """This run's claim on the item (its `attempts`); `Superseded` when it no longer holds it."""
    item = read_item(source.key)
    if not (
        item
        and item.get("flow_run_id") == flow_run_id
        and item.get("etag") == source.etag
        and item.get("overall_processing_status") == PROCESSING
    ):
        raise Superseded(f"another run or a newer upload of {source.key} owns its record")
    return int(item.get("attempts", 0))
