"""IMAGE_PIPELINE_LABELS=local through the whole flow: a real photo gets real labels."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from deployments.local.samples import PHOTOS
from image_pipeline import classifier
from image_pipeline.records import read_item
from image_pipeline.report import render
from image_pipeline.settings import get_settings
from tests.flows.runner import run_process_image
from tests.support import unique_key

pytestmark = pytest.mark.usefixtures("prefect_server")


@pytest.fixture
def local_labels(configure: Callable[..., None], tmp_path: Path) -> None:
    configure(labels="local", model_cache_dir=tmp_path)
    classifier.session.cache_clear()  # this test's cache folder, as a new process would


def test_a_photo_of_a_cat_is_labelled_cat_with_its_parents(local_labels, upload) -> None:
    key = unique_key("cat.jpg")
    etag = upload(key, (PHOTOS / "chelsea.jpg").read_bytes())

    state = run_process_image(get_settings().uploads_bucket, key, etag, return_state=True)

    assert state.is_completed(), state.message
    item = read_item(key)
    assert item is not None
    assert (item["labels_status"], item["labels_source"]) == ("COMPLETED", "local")
    labels = {label["Name"]: label for label in item["extracted_metadata"]["rekognition_labels"]}
    assert labels["Cat"]["Confidence"] > 95
    assert labels["Cat"]["Parents"] == [{"Name": "Feline"}, {"Name": "Mammal"}, {"Name": "Animal"}]
    assert "rekognition_error" not in item and "labels_skipped_reason" not in item
    assert "- Cat (99.9%) < Feline, Mammal, Animal" in render(item)
