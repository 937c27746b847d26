"""ImageNet class probabilities as Rekognition-shaped labels, through WordNet's hypernyms.

`imagenet_labels.json` (written by `build_taxonomy.py` from WordNet 3.0) gives each class
a name and its parents: "Tabby" has Cat, Pet, Feline, Animal, Mammal. A label's
confidence is the probability of every class it covers, so three cat breeds at 71, 15
and 13 % make "Cat" 99 %: the general label is as sure as the sum of its kinds.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

TABLE = Path(__file__).with_name("imagenet_labels.json")
# Classes under this probability add nothing a label could show (0.01 %).
NEGLIGIBLE = 1e-4


@dataclass(frozen=True)
class Taxonomy:
    names: tuple[str, ...]  # of each class, in class order
    class_parents: tuple[tuple[str, ...], ...]
    label_parents: dict[str, tuple[str, ...]]  # of each general label (Cat, Animal, ...)

    def parents(self, name: str) -> tuple[str, ...]:
        return self.label_parents.get(name, ())


@lru_cache(maxsize=1)
def taxonomy() -> Taxonomy:
    table = json.loads(TABLE.read_text(encoding="utf-8"))
    return Taxonomy(
        names=tuple(entry["name"] for entry in table["classes"]),
        class_parents=tuple(tuple(entry["parents"]) for entry in table["classes"]),
        label_parents={name: tuple(parents) for name, parents in table["labels"].items()},
    )


def labels_for(
    probabilities: np.ndarray, *, max_labels: int, min_confidence: float
) -> list[dict[str, Any]]:
    """`[{Name, Confidence, Parents: [{Name}]}]`, most confident first, as Rekognition's
    DetectLabels answers: at most `max_labels`, none under `min_confidence` (percent)."""
    table = taxonomy()
    scores: dict[str, float] = defaultdict(float)
    parents: dict[str, tuple[str, ...]] = {}
    for index in np.flatnonzero(probabilities >= NEGLIGIBLE):
        probability = float(probabilities[index])
        name = table.names[index]
        scores[name] += probability
        parents[name] = table.class_parents[index]
        for parent in table.class_parents[index]:
            scores[parent] += probability
            parents[parent] = table.parents(parent)
    # Most confident first; among equals the most specific (Cat before Feline before Animal).
    ranked = sorted(scores.items(), key=lambda item: (-item[1], -len(parents[item[0]])))
    return [
        {
            "Name": name,
            "Confidence": round(min(100.0, 100 * score), 2),
            "Parents": [{"Name": parent} for parent in parents[name]],
        }
        for name, score in ranked
        if 100 * score >= min_confidence
    ][:max_labels]
