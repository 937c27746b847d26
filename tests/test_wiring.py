"""prefect.yaml: every entrypoint imports, and every deployment names a flow that exists."""

from __future__ import annotations

import importlib
from pathlib import Path

import yaml
from prefect.flows import Flow

REPO = Path(__file__).resolve().parents[1]


def deployments() -> list[dict]:
    return yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]


def test_every_entrypoint_is_a_flow_of_that_name() -> None:
    names = []
    for deployment in deployments():
        path, _, attribute = deployment["entrypoint"].partition(":")
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        flow = getattr(module, attribute)
        assert isinstance(flow, Flow), deployment["name"]
        assert flow.name == deployment["name"]
        names.append(flow.name)
    assert sorted(names) == [
        "backfill",
        "process-image",
        "process-images",
        "reconcile-stuck-images",
        "rerun-failed-images",
    ]


def test_the_trigger_passes_what_process_images_takes() -> None:
    [process_images] = [d for d in deployments() if d["name"] == "process-images"]
    [trigger] = process_images["triggers"]
    assert trigger["parameters"] == {"images": "{{ event.payload.images }}"}
    assert trigger["expect"] == ["aws.s3.objects.created"]
