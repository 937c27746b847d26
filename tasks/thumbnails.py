"""Thumbnails: fit the decoded image inside each box, encode, upload."""

from __future__ import annotations

import io
from typing import Any

from botocore.exceptions import ClientError
from PIL import Image
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks import record
from tasks.aws import client, error_code
from tasks.errors import Superseded
from tasks.models import DecodedImage, RenderedThumbnail, Size, SourceObject, Thumbnail
from tasks.retry import TRANSIENT_RETRIES
from tasks.settings import get_settings

CONTENT_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}

MAX_S3_KEY_BYTES = 1024  # S3 refuses longer keys (UTF-8 bytes)

# Each thumbnail records the claim that wrote it (`x-amz-meta-generation`: the item's
# `attempts` after that claim, which every claim increments), so that a run never replaces
# the thumbnail of a later claim. See `_put_fenced`.
GENERATION = "generation"
# Writers that lost a conditional write read again and retry; each writer succeeds at most
# once, so a round is lost at most once per concurrent writer.
_MAX_FENCE_ROUNDS = 16
_LOST_RACE = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict", "409"})
_GONE = frozenset({"NoSuchKey", "404", "NotFound"})

# Lossy WebP with alpha; higher than Pillow's default 80 because logos and line art are the
# usual transparent uploads and show artefacts first.
WEBP_QUALITY = 90

# Pillow shrinks by an integer factor with a box filter first, then finishes with BICUBIC
# (`thumbnail()`'s own filter) from at most 3x the target size. BICUBIC instead of LANCZOS:
# 6 ms less per 12 MP photo (BENCHMARKS.md) with no difference visible at thumbnail size.
REDUCING_GAP = 3.0


def fit_within(size: Size, box: Size) -> Size:
    """The size of `size` scaled to fit inside `box`, aspect kept, never enlarged."""
    width, height = size
    if width <= box[0] and height <= box[1]:
        return width, height
    scale = min(box[0] / width, box[1] / height)
    # Round, but never to 0 (a 10000x1 strip) and never past the box.
    return (
        min(box[0], max(1, round(width * scale))),
        min(box[1], max(1, round(height * scale))),
    )


def render_thumbnails(
    image: DecodedImage,
    boxes: list[Size],
    *,
    transparent_format: str = "PNG",
    jpeg_quality: int = 85,
) -> list[RenderedThumbnail]:
    """One encoded thumbnail per box, in the order of `boxes`."""
    targets = [fit_within(image.pixels.size, box) for box in boxes]
    resized = _resize_cascade(image.pixels, targets)
    return [
        _encode(box, resized[target], transparent_format, jpeg_quality)
        for box, target in zip(boxes, targets, strict=True)
    ]


def _resize_cascade(pixels: Image.Image, targets: list[Size]) -> dict[Size, Image.Image]:
    """Each target size once, largest first, each made from the previous result.

    Resizing from the previous result is much cheaper than from the full image. The order is
    by the size needed, not by the box: for a portrait photo 500x500 needs more pixels than
    640x480. All targets share the image's aspect ratio, so the previous result covers the
    next on both axes; the check only guards against ever enlarging.
    """
    done: dict[Size, Image.Image] = {}
    source = pixels
    for target in sorted(set(targets), key=lambda s: s[0] * s[1], reverse=True):
        if source.width < target[0] or source.height < target[1]:
            source = pixels
        done[target] = source = _resize(source, target)
    return done


def _resize(source: Image.Image, target: Size) -> Image.Image:
    if source.size == target:
        return source
    # Pillow premultiplies alpha while resampling RGBA/LA, so edges don't get dark fringes.
    return source.resize(target, Image.Resampling.BICUBIC, reducing_gap=REDUCING_GAP)


def _encode(
    box: Size, im: Image.Image, transparent_format: str, jpeg_quality: int
) -> RenderedThumbnail:
    if im.mode in ("RGBA", "LA"):
        fmt = transparent_format
        if fmt == "WEBP" and im.mode == "LA":
            im = im.convert("RGBA")  # WebP has no grey+alpha mode
        options: dict[str, object] = {"quality": WEBP_QUALITY} if fmt == "WEBP" else {}
    else:
        fmt = "JPEG"
        # Baseline, not progressive: 0.8 ms instead of 5 ms at 640x480 for files about 6%
        # larger (BENCHMARKS.md); encoding is on every upload's critical path.
        options = {"quality": jpeg_quality, "optimize": False, "progressive": False}
    buffer = io.BytesIO()
    # `exif`, `icc_profile` and text chunks are never passed, and PNG would otherwise copy
    # them from `info`: thumbnails carry pixels only, so no GPS position can leak.
    clean = im.copy()
    clean.info = {}
    clean.save(buffer, fmt, **options)
    return RenderedThumbnail(
        box=box,
        width=im.width,
        height=im.height,
        format=fmt,
        content_type=CONTENT_TYPES[fmt],
        data=buffer.getvalue(),
    )


def thumbnail_key(source_key: str, label: str, extension: str) -> str:
    """`thumbnails/{source_key}/{label}.{extension}`.

    The whole source key is kept, as is (no URL encoding or decoding), so `a/x.jpg` and
    `b/x.jpg` never share a thumbnail and every thumbnail of one image shares a prefix.
    """
    return f"thumbnails/{source_key}/{label}.{extension}"


def claim_generation(source: SourceObject, run_id: str) -> int:
    """This run's claim on the item (its `attempts`); `Superseded` when it no longer holds it."""
    item = record.read_item(source.key)
    if not (
        item
        and item.get("flow_run_id") == run_id
        and item.get("etag") == source.etag
        and item.get("overall_processing_status") == record.PROCESSING
    ):
        raise Superseded(f"another run or a newer upload of {source.key} owns its record")
    return int(item.get("attempts", 0))


@task(name="thumbnails", **TRANSIENT_RETRIES, cache_policy=NO_CACHE, persist_result=False)
def make_thumbnails(
    source: SourceObject, image: DecodedImage, run_id: str | None = None
) -> list[Thumbnail]:
    """Render every configured size and upload it to the thumbnails bucket.

    With `run_id` (the flow and the backfill always pass it) only while that run holds the
    item's claim, and never over a thumbnail written under a later claim: an older upload's
    run that finishes late cannot replace the newer upload's thumbnails.
    """
    settings = get_settings()
    generation = claim_generation(source, run_id) if run_id is not None else None
    rendered = render_thumbnails(
        image,
        list(settings.thumbnail_sizes),
        transparent_format=settings.transparent_format,
        jpeg_quality=settings.jpeg_quality,
    )
    return [_upload(source, thumb, settings.thumbnails_bucket, generation) for thumb in rendered]


def _upload(
    source: SourceObject, thumb: RenderedThumbnail, bucket: str, generation: int | None
) -> Thumbnail:
    key = thumbnail_key(source.key, thumb.label, thumb.extension)
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
            if error_code(exc) not in _LOST_RACE | _GONE:
                raise
            lost = exc
        try:
            head = s3.head_object(Bucket=request["Bucket"], Key=request["Key"])
        except ClientError as exc:
            if error_code(exc) not in _GONE:
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


def _generation_of(head: dict[str, Any]) -> int:
    """The claim generation a thumbnail was written under; 0 for one written before fencing."""
    try:
        return int(head.get("Metadata", {}).get(GENERATION, 0))
    except ValueError:
        return 0
