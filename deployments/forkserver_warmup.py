"""What the forkserver does once, after its imports, so that no forked run does it.

Only the forkserver imports this module (it is the last of `deployments.worker.PRELOADED`),
so the worker, the server and the tests that import `deployments.worker` pay none of it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from pydantic import BaseModel

from deployments.worker import exported_settings
from image_pipeline import aws


def _models(base: type[BaseModel] = BaseModel) -> Iterator[type[BaseModel]]:
    for model in base.__subclasses__():
        yield model
        yield from _models(model)


def complete_models() -> None:
    """Build the validators pydantic left for first use.

    A model with forward references at import is completed the first time it validates.
    Prefect's client schemas are such models (`FlowRun`, `State`, `Deployment`, ...), so
    without this every run built them again on reading its flow run: about 0.25 s of CPU
    in each, against 0.2 s once here.
    """
    for model in list(_models()):
        if not model.__pydantic_complete__:
            # As pydantic does on first use: a model it cannot complete stays lazy.
            model.model_rebuild(raise_errors=False)


complete_models()
aws.parse_service_models()  # botocore's models, about 0.13 s of a run's first AWS calls
WARMED_UP_IN = os.getpid()  # the forkserver's, in every run forked from it

# The settings Prefect read when the forkserver imported it, as variables: what a forked
# run compares its job's settings with (`deployments.worker._same_settings`).
FORKSERVER_SETTINGS = exported_settings()
