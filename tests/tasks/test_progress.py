"""Progress of a long run: the artifact on a real (temporary) Prefect server, and the log."""

from __future__ import annotations

import logging
from uuid import UUID

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterId

from tasks.progress import Progress
from tests.flows.artifacts import artifacts_of, progress_logged

pytestmark = pytest.mark.usefixtures("prefect_server")


def on_server(artifact_id: UUID) -> float:
    with get_client(sync_client=True) as prefect:
        [artifact] = prefect.read_artifacts(
            artifact_filter=ArtifactFilter(id=ArtifactFilterId(any_=[artifact_id]))
        )
    return artifact.data


@flow(name="count-images", persist_result=False)
def count_images(total: int, repeat_from: int) -> tuple[int, float]:
    """Count `total` images; the count and what the server showed half-way."""
    progress = Progress.start("count-images", "Counting", total)
    half_way = -1.0
    for done in range(1, total + 1):
        progress.advance()
        if done == repeat_from:  # a retried task reports counts it already reported
            for again in range(1, done + 1):
                progress.reach(again)
        if done == total // 2:
            half_way = on_server(progress.artifact_id)
    return progress.done, half_way


def test_a_long_run_is_shown_once_per_whole_percent(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        state = count_images(total=250, repeat_from=120, return_state=True)

    assert state.result() == (250, 50)  # repeated counts are not counted twice
    logged = progress_logged(caplog, "Counting")
    assert logged[0] == (0, 250) and logged[-1] == (250, 0)
    # One line per whole percent (0 to 100), never the same count twice.
    assert len(logged) == 101
    assert [done for done, _ in logged] == sorted({done for done, _ in logged})
    [progress] = artifacts_of(state.state_details.flow_run_id, "progress")
    assert progress.key == "count-images-progress" and progress.data == 100
    assert progress.description == "Counting: 250 of 250 images done, 0 left."


def test_a_few_images_are_shown_one_by_one(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        state = count_images(total=3, repeat_from=0, return_state=True)

    assert progress_logged(caplog, "Counting") == [(0, 3), (1, 2), (2, 1), (3, 0)]
    [progress] = artifacts_of(state.state_details.flow_run_id, "progress")
    assert progress.data == 100
