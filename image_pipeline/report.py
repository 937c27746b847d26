"""The run's artifact: the result at a glance in the Prefect UI."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from image_pipeline.models import QUARANTINED
from image_pipeline.settings import get_settings


def thumbnail_link(uri: str) -> str:
    """An s3:// URI as a link a browser can follow (the emulator serves objects over HTTP)."""
    endpoint = get_settings().aws_endpoint_url
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    # A key may hold spaces, `#`, `?` or `)`: raw, they would end or bend the Markdown link.
    path = quote(key, safe="/")
    if endpoint:
        return f"{endpoint.rstrip('/')}/{bucket}/{path}"
    return f"https://{bucket}.s3.amazonaws.com/{path}"


def render(item: dict[str, Any]) -> str:
    metadata = dict(item.get("extracted_metadata", {}))
    labels = metadata.pop("rekognition_labels", [])
    exif = metadata.pop("exif", {}) or {}
    rows = [("Status", item["overall_processing_status"]), ("ETag", item.get("etag", ""))]
    rows += [(name, value) for name, value in {**metadata, **exif}.items()]
    lines = [f"# `{item['ImageKey']}`", "", "| field | value |", "|---|---|"]
    lines += [f"| {name} | {_cell(value)} |" for name, value in rows]
    lines += ["", "## Thumbnails", ""]
    lines += [
        f"- [{size}]({thumbnail_link(uri)}) `{uri}`"
        for size, uri in item.get("thumbnails", {}).items()
    ]
    lines += ["", "## Labels", ""]
    if labels:
        lines += [f"- {_label(label)}" for label in labels]
    elif item.get("rekognition_error"):
        lines.append(f"Rekognition error: {_cell(item['rekognition_error'])}")
    else:
        lines.append(_cell(item.get("labels_skipped_reason") or "No labels."))
    lines += ["", "## Moderation", "", *_moderation(item)]
    return "\n".join(lines) + "\n"


def _label(label: dict[str, Any]) -> str:
    """`Cat (99.9%) < Feline, Mammal, Animal`: its parents, when it has them (local labels)."""
    text = f"{_cell(label['Name'])} ({label['Confidence']:.1f}%)"
    parents = [parent["Name"] for parent in label.get("Parents") or []]
    return f"{text} < {_cell(', '.join(parents))}" if parents else text


def _moderation(item: dict[str, Any]) -> list[str]:
    status = item.get("moderation_status")
    if status is None:
        return ["Not recorded."]
    lines = [
        f"Status: **{status}**" + (" (thumbnails quarantined)" if status in QUARANTINED else "")
    ]
    if item.get("moderation_error"):
        lines.append(f"Rekognition error: {_cell(item['moderation_error'])}")
    if item.get("moderation_skipped_reason"):
        lines.append(_cell(item["moderation_skipped_reason"]))
    lines += [
        f"- {_cell(label['Name'])} ({label['Confidence']:.1f}%)"
        for label in item.get("moderation_labels", [])
    ]
    return lines


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")
