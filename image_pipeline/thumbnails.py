"""Storing thumbnails in S3, never over those of a later claim on the image's record."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from image_pipeline.aws import GONE, client, error_code
from image_pipeline.errors import Superseded
from image_pipeline.imaging.render import render_thumbnails
from image_pipeline.keys import thumbnail_key, thumbnails_folder
from image_pipeline.models import DecodedImage, RenderedThumbnail, SourceObject, Thumbnail
from image_pipeline.records import claim_generation
from image_pipeline.settings import get_settings

# Each thumbnail records the claim that wrote it (`x-amz-meta-generation`: the item's
# `attempts` after that claim, which every claim increments), so that a run never replaces
# the thumbnail of a later claim. See `_put_fenced`.
GENERATION = "generation"
# Writers that lost a conditional write read again and retry; each writer succeeds at most
# once, so a round is lost at most once per concurrent writer.
_MAX_FENCE_ROUNDS = 16
_LOST_RACE = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict", "409"})


def make_thumbnails(
    source: SourceObject,
    image: DecodedImage,
    run_id: str | None = None,
    *,
    quarantined: bool = False,
    withdraw_other: bool = False,
) -> list[Thumbnail]:
    """Render every configured thumbnail and upload it to the thumbnails bucket.

    With `run_id` (the pipeline always passes it) only while that run holds the item's
    claim, and never over a thumbnail written under a later claim: an older upload's run
    that finishes late cannot replace the newer upload's thumbnails.

    `quarantined` (moderation held the image back) writes them under `quarantine/`
    instead of `thumbnails/`. With `withdraw_other` (moderation checked the image) the
    image's thumbnails in the other folder, left by an earlier version, are deleted: a
    flagged re-upload leaves nothing public. Without moderation that listing is not made.
    """
    made = make_and_keep_thumbnails(
        source, image, run_id, quarantined=quarantined, withdraw_other=withdraw_other
    )
    return [stored for stored, _ in made]


def make_and_keep_thumbnails(
    source: SourceObject,
    image: DecodedImage,
    run_id: str | None = None,
    *,
    quarantined: bool = False,
    withdraw_other: bool = False,
) -> list[tuple[Thumbnail, RenderedThumbnail]]:
    """`make_thumbnails`, each stored thumbnail with what was rendered (its pixels too)."""
    settings = get_settings()
    generation = claim_generation(source, run_id) if run_id is not None else None
    rendered = render_thumbnails(
        image,
        settings.thumbnail_specs,
        transparent_format=settings.transparent_format,
        jpeg_quality=settings.jpeg_quality,
    )
    bucket = settings.thumbnails_bucket
    made = [(upload(source, thumb, bucket, generation, quarantined), thumb) for thumb in rendered]
    if withdraw_other:
        withdraw(bucket, thumbnails_folder(source.key, quarantined=not quarantined), generation)
    return made


def smallest(rendered: list[RenderedThumbnail]) -> RenderedThumbnail:
    return min(rendered, key=lambda thumb: thumb.width * thumb.height)


def upload(
    source: SourceObject,
    thumb: RenderedThumbnail,
    bucket: str,
    generation: int | None,
    quarantined: bool = False,
) -> Thumbnail:
    key = thumbnail_key(source.key, thumb.label, thumb.extension, quarantined=quarantined)
    request = dict(Bucket=bucket, Key=key, Body=thumb.data, ContentType=thumb.content_type)
    if generation is None:
        client("s3").put_object(**request)
    else:
        _put_fenced(request, generation)
    return Thumbnail(
        label=thumb.label,
        bucket=bucket,
        key=key,
        width=thumb.width,
        height=thumb.height,
        content_type=thumb.content_type,
    )


def _put_fenced(request: dict[str, Any], generation: int) -> None:
    """Put the thumbnail unless one of a later claim is there: compare-and-swap with S3's
    conditional writes, so it holds whatever the interleaving and however long a run stalls.

    Create it only if absent (`If-None-Match: *`); otherwise read the generation of the one
    there and replace exactly that object (`If-Match` on its ETag), or stop with `Superseded`
    when it belongs to a later claim. A writer that got in between makes the condition fail,
    and the loop reads again.
    """
    s3 = client("s3")
    request = {**request, "Metadata": {GENERATION: str(generation)}}
    condition: dict[str, str] = {"IfNoneMatch": "*"}
    for _ in range(_MAX_FENCE_ROUNDS):
        try:
            s3.put_object(**request, **condition)
            return
        except ClientError as exc:
            if error_code(exc) not in _LOST_RACE | GONE:
                raise
            lost = exc
        try:
            head = s3.head_object(Bucket=request["Bucket"], Key=request["Key"])
        except ClientError as exc:
            if error_code(exc) not in GONE:
                raise
            condition = {"IfNoneMatch": "*"}  # deleted meanwhile
            continue
        theirs = _generation_of(head)
        if theirs > generation:
            raise Superseded(
                f"s3://{request['Bucket']}/{request['Key']} was written by a later claim "
                f"({theirs}) than this run's ({generation})."
            )
        condition = {"IfMatch": head["ETag"]}
    raise lost


def withdraw(bucket: str, folder: str, generation: int | None) -> list[str]:
    """Delete the thumbnails under `folder` (an image's other set); the keys deleted.

    With `generation`, only those written under this claim or an earlier one: each delete
    is conditional on the ETag whose generation was read (`If-Match`), so a thumbnail a
    later claim writes meanwhile is never deleted, and this run stops with `Superseded`.
    """
    s3 = client("s3")
    deleted: list[str] = []
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=folder)
    for page in pages:
        for entry in page.get("Contents", []):
            if _delete_fenced(bucket, entry["Key"], generation):
                deleted.append(entry["Key"])
    return deleted


def _delete_fenced(bucket: str, key: str, generation: int | None) -> bool:
    s3 = client("s3")
    for _ in range(_MAX_FENCE_ROUNDS):
        try:
            head = s3.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if error_code(exc) in GONE:
                return False  # deleted meanwhile
            raise
        theirs = _generation_of(head)
        if generation is not None and theirs > generation:
            raise Superseded(
                f"s3://{bucket}/{key} was written by a later claim ({theirs}) than this "
                f"run's ({generation})."
            )
        try:
            s3.delete_object(Bucket=bucket, Key=key, IfMatch=head["ETag"])
            return True
        except ClientError as exc:
            if error_code(exc) in GONE:
                return False
            if error_code(exc) not in _LOST_RACE:
                raise
    raise Superseded(f"s3://{bucket}/{key} kept changing while this run withdrew it.")


def _generation_of(head: dict[str, Any]) -> int:
    """The claim generation a thumbnail was written under; 0 for one written before fencing."""
    try:
        return int(head.get("Metadata", {}).get(GENERATION, 0))
    except ValueError:
        return 0
