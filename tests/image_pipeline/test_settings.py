import os
import re
from pathlib import Path

import pytest
from PIL import features
from pydantic import ValidationError

from image_pipeline.models import ThumbnailSpec
from image_pipeline.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Defaults only: other tests point the process at the emulator."""
    for name in list(os.environ):
        if name.startswith("IMAGE_PIPELINE_"):
            monkeypatch.delenv(name)


def test_readme_configuration_table_lists_every_setting_with_its_default() -> None:
    rows = dict(re.findall(r"^\| `IMAGE_PIPELINE_(\w+)` \| ([^|]+) \|", README.read_text(), re.M))
    assert set(rows) == {name.upper() for name in Settings.model_fields}
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        documented = rows[name.upper()].strip()
        if default is None:
            assert documented == "unset", name
        elif default == []:
            assert documented == "none", name
        elif name != "thumbnail_sizes":
            assert Settings(**{name: documented.split()[0].strip("`")}) == Settings(), name


def test_thumbnail_sizes_parse_and_come_largest_first(monkeypatch) -> None:
    monkeypatch.setenv("IMAGE_PIPELINE_THUMBNAIL_SIZES", "100x100, 1024x768,640x480")
    assert Settings().thumbnail_sizes == [(1024, 768), (640, 480), (100, 100)]


@pytest.mark.parametrize("sizes", ["", "100", "100x", "0x10", "axb"])
def test_bad_thumbnail_sizes_are_refused_with_a_message(monkeypatch, sizes: str) -> None:
    monkeypatch.setenv("IMAGE_PIPELINE_THUMBNAIL_SIZES", sizes)
    with pytest.raises(ValidationError, match="thumbnail size"):
        Settings()


def test_labels_are_off_by_default_with_an_emulator_endpoint() -> None:
    assert Settings().labels_enabled
    assert not Settings(aws_endpoint_url="http://127.0.0.1:4566").labels_enabled
    assert Settings(aws_endpoint_url="http://x", labels="rekognition").labels_enabled
    assert not Settings(labels="off").labels_enabled


def test_thumbnails_parse_crop_and_format_largest_first(monkeypatch) -> None:
    monkeypatch.setenv("IMAGE_PIPELINE_THUMBNAILS", "100x100:cover:webp, 640x480:fit:jpeg,50x50")
    monkeypatch.setenv("IMAGE_PIPELINE_THUMBNAILS_BUCKET", "b")  # a neighbour, not a spec
    assert Settings().thumbnail_specs == [
        ThumbnailSpec((640, 480), "fit", "JPEG"),
        ThumbnailSpec((100, 100), "cover", "WEBP"),
        ThumbnailSpec((50, 50), "fit", "JPEG"),
    ]
    monkeypatch.setenv("IMAGE_PIPELINE_THUMBNAILS", "300x200:AVIF:Entropy")
    assert Settings().thumbnail_specs == [ThumbnailSpec((300, 200), "entropy", "AVIF")]


def test_thumbnail_sizes_still_work_as_fit_jpegs(monkeypatch) -> None:
    monkeypatch.setenv("IMAGE_PIPELINE_THUMBNAIL_SIZES", "64x64,320x240")
    assert Settings().thumbnail_specs == [ThumbnailSpec((320, 240)), ThumbnailSpec((64, 64))]
    assert Settings().thumbnail_specs[0] == ThumbnailSpec((320, 240), "fit", "JPEG")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("100x100:crop", "not of the form"),
        ("100x100:cover:fit", "not of the form"),
        ("100x100:png", "not of the form"),
        ("100x100:cover,100x100:fit:webp", "each thumbnail box may appear once"),
        ("0x100:cover", "positive"),
        ("", "at least one"),
    ],
)
def test_bad_thumbnails_are_refused_with_a_message(monkeypatch, value: str, message: str) -> None:
    monkeypatch.setenv("IMAGE_PIPELINE_THUMBNAILS", value)
    with pytest.raises(ValidationError, match=message):
        Settings()


def test_thumbnails_and_thumbnail_sizes_are_not_set_together(monkeypatch) -> None:
    monkeypatch.setenv("IMAGE_PIPELINE_THUMBNAILS", "100x100:cover")
    monkeypatch.setenv("IMAGE_PIPELINE_THUMBNAIL_SIZES", "100x100")
    with pytest.raises(ValidationError, match="not both"):
        Settings()


def test_avif_is_refused_by_a_pillow_without_it(monkeypatch) -> None:
    monkeypatch.setenv("IMAGE_PIPELINE_THUMBNAILS", "100x100:avif")
    assert Settings().thumbnail_specs[0].format == "AVIF"  # this Pillow has it
    monkeypatch.setattr(features, "check", lambda feature: feature != "avif")
    with pytest.raises(ValidationError, match="without AVIF"):
        Settings()
