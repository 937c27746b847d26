"""The run's Markdown report: the placeholder and the duplicate facts."""

from __future__ import annotations

from image_pipeline.report import render

ITEM = {
    "ImageKey": "uploads/a.jpg",
    "overall_processing_status": "COMPLETED",
    "extracted_metadata": {"format": "JPEG", "rekognition_labels": []},
    "thumbnails": {"100x100": "s3://thumbs/thumbnails/uploads/a.jpg/100x100.avif"},
    "labels_skipped_reason": "off",
}


def test_the_report_shows_the_placeholder_the_hash_and_the_duplicate() -> None:
    text = render(
        ITEM
        | {
            "thumbhash": "3wcKPZpwd4dweHh3h3eHd4CACPh3",
            "dominant_color": "#4a6b8c",
            "dhash": "58b4e68686e6b458",
            "duplicate_of": "uploads/original.jpg",
        }
    )
    section = text.split("## Placeholder and duplicates")[1].split("## Labels")[0]
    assert "- ThumbHash: `3wcKPZpwd4dweHh3h3eHd4CACPh3`" in section
    assert "- Dominant colour: `#4a6b8c`" in section
    assert "- dHash: `58b4e68686e6b458`" in section
    assert "- Duplicate of: `uploads/original.jpg`" in section
    assert "100x100.avif" in text


def test_the_report_says_when_there_is_no_duplicate_or_nothing_recorded() -> None:
    unique = render(ITEM | {"dhash": "58b4e68686e6b458"})
    assert "Duplicate of: none" in unique
    older = render(ITEM)  # recorded before placeholders existed
    assert older.split("## Placeholder and duplicates")[1].split("## Labels")[0].strip() == (
        "Not recorded."
    )
