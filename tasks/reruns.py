"""The steps of rerun-failed-images: which FAILED images have a run in the way, and starting
one process-image run for each of the others."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.deployments import run_deployment

from image_pipeline.outcomes import RunRef
from image_pipeline.reruns import SKIPPED_RERUN_BEFORE, SKIPPED_RUNNING, Failure
from image_pipeline.runs import PROCESS_IMAGE_DEPLOYMENT, runs_by_idempotency_key, unfinished_runs
from tasks.policies import PREFECT_API_RETRIES
from tasks.progress import Progress


@task(
    name="find-runs-in-the-way", **PREFECT_API_RETRIES, cache_policy=NO_CACHE, persist_result=False
)
def find_runs_in_the_way(images: list[Failure]) -> dict[str, tuple[str, RunRef]]:
    """For each image that must not be started now: why, and the process-image run that says so.

    An unfinished run (scheduled, pending, running, paused, cancelling) of process-image
    with that key is in the way, whether a trigger, a person or a rerun started it; so is
    a run that an earlier rerun started for the same failure, whatever its state.
    """
    with get_client(sync_client=True) as client:
        rerun_before = runs_by_idempotency_key(
            client, {image.idempotency_key: image.key for image in images}
        )
        unfinished = unfinished_runs(client, {image.key for image in images})
    in_the_way = {key: (SKIPPED_RERUN_BEFORE, run) for key, run in rerun_before.items()}
    # An unfinished run says more than "rerun before" (and may be that very rerun).
    in_the_way |= {key: (SKIPPED_RUNNING, run) for key, run in unfinished.items()}
    return in_the_way


@task(name="start-reruns", **PREFECT_API_RETRIES, cache_policy=NO_CACHE, persist_result=False)
def start_reruns(images: list[Failure], progress: Progress) -> list[RunRef]:
    """One process-image run per image, for the object as it is now (`etag` None).

    Each run's idempotency key names the failure it reruns, so a retry of this task (or
    of the flow) finds the runs it already created instead of making new ones. `images`
    are the last of `progress`'s images: those before them are done.
    """
    logger = get_run_logger()
    started = []
    first = progress.total - len(images)
    for done, image in enumerate(images, start=first + 1):
        run = run_deployment(
            name=PROCESS_IMAGE_DEPLOYMENT,
            parameters={"bucket": image.bucket, "key": image.key, "etag": None},
            flow_run_name=image.key,
            tags=["rerun"],
            idempotency_key=image.idempotency_key,
            timeout=0,
            as_subflow=False,
        )
        logger.info("Started %s for %s (failed with %s).", run.id, image.key, image.error_type)
        started.append(RunRef.of(run))
        progress.reach(done)
    return started
