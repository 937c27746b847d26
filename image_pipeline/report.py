"""The run's artifact: the result at a glance in the Prefect UI, for successes and failures.

A success shows its smallest thumbnail inline. The UI's browser fetches it, so the link
must work without AWS credentials: locally the emulator serves the object over plain HTTP;
on AWS the link is a presigned URL, which works until it expires, and the report says when.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from image_pipeline.aws import presigned_get_url
from image_pipeline.models import QUARANTINED
from image_pipeline.outcomes import Summary
from image_pipeline.settings import get_settings


def thumbnail_link(uri: str) -> str:
    """An s3:// URI as a link a browser can follow: the emulator's URL, or a presigned one."""
    settings = get_settings()
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if settings.aws_endpoint_url:
        # A key may hold spaces, `#`, `?` or `)`: raw, they would end or bend the link.
        return f"{settings.aws_endpoint_url.rstrip('/')}/{bucket}/{quote(key, safe='/')}"
    return presigned_get_url(bucket, key, settings.report_link_seconds)


def links_note() -> str:
    """What the reader needs to know about the links: when they stop working, if ever."""
    settings = get_settings()
    if settings.aws_endpoint_url:
        return "Links point at the local emulator."
    expiry = datetime.now(UTC) + timedelta(seconds=settings.report_link_seconds)
    hours = settings.report_link_seconds / 3600
    return (
        f"Links are presigned S3 URLs, valid for {hours:g} h "
        f"(until {expiry.isoformat(timespec='minutes')})."
    )


def smallest_thumbnail(thumbnails: dict[str, str]) -> str | None:
    """The URI of the smallest box (`100x100` before `640x480`): the one to show inline."""

    def area(label: str) -> int:
        width, _, height = label.partition("x")
        return int(width) * int(height) if width.isdigit() and height.isdigit() else 0

    return thumbnails[min(thumbnails, key=area)] if thumbnails else None


def render(item: dict[str, Any]) -> str:
    """A processed image: its thumbnail inline, its fields, its thumbnails and labels."""
    metadata = dict(item.get("extracted_metadata", {}))
    labels = metadata.pop("rekognition_labels", [])
    exif = metadata.pop("exif", {}) or {}
    thumbnails = item.get("thumbnails", {})
    lines = [f"# `{item['ImageKey']}`", ""]
    # A quarantined image is not shown inline: its thumbnails are held for review.
    shown = item.get("moderation_status") not in QUARANTINED
    if shown and (small := smallest_thumbnail(thumbnails)):
        lines += [f"![{_alt(item['ImageKey'])}]({thumbnail_link(small)})", ""]
    rows = [("Status", item["overall_processing_status"]), ("ETag", item.get("etag", ""))]
    rows += [(name, value) for name, value in {**metadata, **exif}.items()]
    lines += ["| field | value |", "|---|---|"]
    lines += [f"| {name} | {_cell(value)} |" for name, value in rows]
    lines += ["", "## Thumbnails", ""]
    lines += [f"- [{size}]({thumbnail_link(uri)}) `{uri}`" for size, uri in thumbnails.items()]
    if thumbnails:
        lines += ["", links_note()]
    lines += ["", "## Placeholder and duplicates", ""]
    lines += _media_lines(item)
    lines += ["", "## Labels", ""]
    if labels:
        lines += [f"- {_label(label)}" for label in labels]
    elif item.get("rekognition_error"):
        lines.append(f"Rekognition error: {_cell(item['rekognition_error'])}")
    else:
        lines.append(_cell(item.get("labels_skipped_reason") or "No labels."))
    lines += ["", "## Moderation", "", *_moderation(item)]
    return "\n".join(lines) + "\n"


def _media_lines(item: dict[str, Any]) -> list[str]:
    """The placeholder, the perceptual hash and what the image duplicates, when recorded."""
    facts = {
        "ThumbHash": item.get("thumbhash"),
        "Dominant colour": item.get("dominant_color"),
        "dHash": item.get("dhash"),
        "Duplicate of": item.get("duplicate_of"),
    }
    lines = [f"- {name}: `{_cell(value)}`" for name, value in facts.items() if value]
    if item.get("dhash") and not item.get("duplicate_of"):
        lines.append("- Duplicate of: none (no earlier image has the same pixels)")
    return lines or ["Not recorded."]


def render_failure(
    key: str, etag: str | None, *, error_type: str, reason: str, failed_step: str
) -> str:
    """A failed image: why, and at which step (the reason is the item's, safe to show)."""
    rows = [
        ("Status", "FAILED"),
        ("ETag", etag or ""),
        ("Failed step", failed_step),
        ("Error type", error_type),
        ("Reason", reason),
    ]
    lines = [f"# `{key}`", "", "| field | value |", "|---|---|"]
    lines += [f"| {name} | {_cell(value)} |" for name, value in rows]
    return "\n".join(lines) + "\n"


def render_outcome(key: str, outcome: str, reason: str) -> str:
    """A run with nothing to do (the version was superseded): what it found."""
    return f"# `{key}`\n\n{outcome}: {_cell(reason)}\n"


def render_batch(summary: Summary) -> str:
    """A batch: one row per image, the thumbnail of each success inline, each failure's
    reason and step."""
    lines = [summary.headline(), "", "| image | result | thumbnail or reason | step |"]
    lines.append("|---|---|---|---|")
    for outcome in summary.outcomes:
        if outcome.thumbnail:
            shown = f"![{_alt(outcome.key)}]({thumbnail_link(outcome.thumbnail)})"
        else:
            reason = f"{outcome.error_type}: {outcome.reason}" if outcome.error_type else ""
            shown = _cell(reason or outcome.reason or "")
        step = outcome.failed_step or ""
        lines.append(f"| `{_cell(outcome.key)}` | {outcome.action} | {shown} | {step} |")
    if any(outcome.thumbnail for outcome in summary.outcomes):
        lines += ["", links_note()]
    return "\n".join(lines) + "\n"


def _alt(key: str) -> str:
    # Alt text ends at `]`: keep the key readable and the image syntax whole.
    return _cell(key).replace("[", "(").replace("]", ")")


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
