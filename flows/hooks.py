"""Flow-state hooks: the item and the SNS notice follow the run's final state.

They run after the flow's last retry (`on_completion`, `on_failure`) or, for a crash,
in the worker after the flow-run process died (`on_crashed`). A hook that raises is
logged by Prefect; nothing here hides an error.

The item and the notice get a sentence chosen by the error's type (`describe_error`); the
error itself, or the state's message, goes to the flow run's log in Prefect.
"""

from __future__ import annotations

import logging
from typing import Any

from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.logging.loggers import flow_run_logger
from prefect.states import State

from image_pipeline import notify, records
from image_pipeline.errors import describe_error, describe_run_end, log_error
from image_pipeline.models import Upload
from image_pipeline.runs import PROCESS_IMAGES_DEPLOYMENT, SETTLE_SECONDS, failed_step, uploads_of
from image_pipeline.sources import normalize_etag
from tasks.pipeline import STEPS, failure_fields

logger = logging.getLogger("image_pipeline.hooks")

# What a failure can be blamed on: the declared steps (claim-record includes the HEAD).
STEP_NAMES = frozenset(step.name for step in STEPS)


def notify_success(flow: Any, flow_run: FlowRun, state: State) -> None:
    """Publish the success notice, once: only the run that produced the item announces it."""
    item = records.read_item(flow_run.parameters["key"])
    if (
        item
        and item.get("flow_run_id") == str(flow_run.id)
        and item.get("overall_processing_status") == records.COMPLETED
    ):
        notify.publish_completed(item)


async def record_failure(flow: Any, flow_run: FlowRun, state: State) -> None:
    # The flow is async, so its state's result is read the async way.
    error = await state.aresult(raise_on_failure=False)
    run_log = flow_run_logger(flow_run, flow)
    if isinstance(error, BaseException):
        log_error(run_log, error, "The run failed")
        _record_and_notify(flow_run, *describe_error(error), error=error)
    else:
        run_log.error("The run failed: %s", state.message)
        _record_and_notify(flow_run, "FlowFailed", describe_run_end("FlowFailed"))


def record_crash(flow: Any, flow_run: FlowRun, state: State) -> None:
    flow_run_logger(flow_run, flow).error("The run crashed: %s", state.message)
    # The dead process sends no more task states, but the server may not have recorded the
    # last ones it sent (the task-run recorder flushes on an interval): wait the full settle.
    _record_and_notify(flow_run, "Crashed", describe_run_end("Crashed"))


def _record_and_notify(
    flow_run: FlowRun,
    error_type: str,
    message: str,
    *,
    error: BaseException | None = None,
    settle_seconds: float = SETTLE_SECONDS,
) -> None:
    params = flow_run.parameters
    step = failed_step(flow_run, settle_seconds=settle_seconds, steps=STEP_NAMES)
    recorded = records.mark_failed(
        params["bucket"],
        params["key"],
        params.get("etag"),
        str(flow_run.id),
        error_type=error_type,
        error_message=message,
        failed_step=step,
        failure_fields=failure_fields(step, error),
    )
    if recorded is None and _another_run_has_it(params["key"], params.get("etag"), flow_run):
        logger.info(
            "%s failed (%s) but another run holds or completed this version of %r: "
            "its result is the image's, so this failure is not announced.",
            flow_run.name,
            error_type,
            params["key"],
        )
        return
    notify.publish_failure(
        params["bucket"],
        params["key"],
        error_type=error_type,
        error_message=message,
        failed_step=step,
    )


def _another_run_has_it(key: str, etag: str | None, flow_run: FlowRun) -> bool:
    """Whether another run claimed (or completed) the very version this run failed on."""
    item = records.read_item(key)
    return bool(
        item
        and etag
        and item.get("etag") == normalize_etag(etag)
        and item.get("flow_run_id") != str(flow_run.id)
        and item.get("overall_processing_status") in (records.PROCESSING, records.COMPLETED)
    )


# --- process-images: a batch of uploads in one run --------------------------------------


def announce_images(flow: Any, flow_run: FlowRun, state: State) -> None:
    """One notice per image that this run recorded; FAILED for any it left PROCESSING."""
    if state.is_failed():
        flow_run_logger(flow_run, flow).error("The run failed: %s", state.message)
    for upload in uploads_of(flow_run):
        try:
            _announce(upload, flow_run, describe_run_end("FlowFailed"))
        except Exception:
            # One image's notice must not cost the others theirs; Prefect logs the hook's
            # own failures, so this logs each image's.
            logger.exception("The notice for %r could not be sent.", upload.key)


def _announce(upload: Upload, flow_run: FlowRun, message: str) -> None:
    item = records.read_item(upload.key)
    if not item or item.get("flow_run_id") != str(flow_run.id):
        return  # another run's result (a duplicate, a newer upload): not ours to announce
    status = item.get("overall_processing_status")
    if status == records.COMPLETED:
        notify.publish_completed(item)
    elif status == records.FAILED:
        notify.publish_failure(
            upload.bucket,
            upload.key,
            error_type=item.get("error_type", "Unknown"),
            error_message=item.get("error_message", ""),
            failed_step=item.get("failed_step", "unknown"),
        )
    elif status == records.PROCESSING:  # the run failed around it: nothing else will record it
        _fail_and_announce(upload, flow_run, "FlowFailed", message)


def _fail_and_announce(
    upload: Upload, flow_run: FlowRun, error_type: str, message: str, *, settle_seconds: float = 0
) -> None:
    step = failed_step(flow_run, settle_seconds=settle_seconds, steps=STEP_NAMES)
    recorded = records.mark_failed(
        upload.bucket,
        upload.key,
        upload.etag,
        str(flow_run.id),
        error_type=error_type,
        error_message=message,
        failed_step=step,
    )
    if recorded is not None:
        notify.publish_failure(
            upload.bucket,
            upload.key,
            error_type=error_type,
            error_message=message,
            failed_step=step,
        )


def split_crashed_batch(flow: Any, flow_run: FlowRun, state: State) -> None:
    """After the run's process died: announce what it finished, and finish the rest.

    The images it was working on run again each in a run of its own, so the one that
    killed the process only takes itself down next time; the images it had not reached
    run again together. A batch of one that crashes is the image at fault: FAILED, Crashed.
    """
    uploads = uploads_of(flow_run)
    unfinished: list[Upload] = []
    in_flight: list[Upload] = []
    for upload in uploads:
        item = records.read_item(upload.key)
        ours = item is not None and item.get("flow_run_id") == str(flow_run.id)
        status = item.get("overall_processing_status") if ours and item else None
        if status in (records.COMPLETED, records.FAILED):
            _announce(upload, flow_run, "")
        elif status == records.PROCESSING:
            in_flight.append(upload)
        else:
            unfinished.append(upload)
    flow_run_logger(flow_run, flow).error("The run crashed: %s", state.message)
    message = describe_run_end("Crashed")
    if len(uploads) == 1:
        for upload in in_flight + unfinished:
            _fail_and_announce(upload, flow_run, "Crashed", message, settle_seconds=SETTLE_SECONDS)
        return
    for upload in in_flight:
        records.release_claim(upload.key, str(flow_run.id))
    batches = [[upload] for upload in in_flight] + ([unfinished] if unfinished else [])
    for number, batch in enumerate(batches):
        run = run_deployment(
            name=PROCESS_IMAGES_DEPLOYMENT,
            parameters={"images": [upload.model_dump() for upload in batch]},
            tags=["after-crash"],
            # The same split however often this hook runs for the same crash.
            idempotency_key=f"{flow_run.id}-after-crash-{number}",
            timeout=0,
            as_subflow=False,
        )
        logger.warning(
            "%s crashed: %d image(s) run again in %s.", flow_run.name, len(batch), run.id
        )
