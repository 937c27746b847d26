"""Reading a flow run's artifacts back from the Prefect server, and its progress log lines."""

from __future__ import annotations

import re
from typing import Any
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterType,
)

PROGRESS_LINE = re.compile(r": (\d+) of (\d+) images done, (\d+) left\.$")


def artifacts_of(flow_run_id: UUID | None, kind: str) -> list[Any]:
    """The run's artifacts of type `kind` ("table", "progress", ...), as the server has them."""
    assert flow_run_id is not None
    with get_client(sync_client=True) as prefect:
        return prefect.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]),
                type=ArtifactFilterType(any_=[kind]),
            )
        )


def progress_logged(caplog: pytest.LogCaptureFixture, subject: str) -> list[tuple[int, int]]:
    """(done, left) of every progress line about `subject`, in the order they were logged."""
    found = []
    for record in caplog.records:
        message = record.getMessage()
        match = PROGRESS_LINE.search(message)
        if match and message.startswith(subject):
            done, total, left = map(int, match.groups())
            assert done + left == total, message
            found.append((done, left))
    return found
