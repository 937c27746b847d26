"""process-images: a batch of uploads in one flow run, each image a task run named by its key.

The webhook gathers the uploads of a short window into one event, and this flow is what
the event starts: one interpreter and one flow run for the batch instead of one per image.
Each image walks the same steps as `process-image` (`tasks.pipeline.STEPS`), each step a
task run of its own with its retries, and ends with its own item. The hooks send one
notice per image; after a crash they finish the batch without anyone acting: the images
that were in flight run again each on their own (so one that kills its process only
fails itself), the rest together.
"""

from __future__ import annotations

from prefect import flow, unmapped
from prefect.runtime import flow_run
from prefect.states import Failed, State
from prefect.task_runners import ThreadPoolTaskRunner

from flows.hooks import announce_images, split_crashed_batch
from image_pipeline import labels
from image_pipeline.models import Upload
from image_pipeline.outcomes import Summary
from image_pipeline.settings import get_settings
from tasks.batch import FAILED, process_upload
from tasks.summary import publish_batch_report, publish_summary


def batch_name() -> str:
    """The first key and how many more: one upload's run is named by its key."""
    images = [Upload.model_validate(image) for image in flow_run.parameters["images"]]
    first = images[0].key if images else "(none)"
    return first if len(images) == 1 else f"{first} and {len(images) - 1} more"


@flow(
    name="process-images",
    flow_run_name=batch_name,
    task_runner=ThreadPoolTaskRunner(max_workers=get_settings().images_at_once),
    on_completion=[announce_images],
    on_failure=[announce_images],
    on_crashed=[split_crashed_batch],
    persist_result=False,
)
def process_images(images: list[Upload]) -> Summary | State:
    """Process every upload of the batch; the outcome of each is the flow's result.

    The run ends Failed when an image failed, so that the UI's Retry button is there: a
    retry runs the same batch again, which redoes the failed images and finds the others
    already done.
    """
    labels.prepare()
    futures = process_upload.map(
        [image.bucket for image in images],
        [image.key for image in images],
        [image.etag for image in images],
        unmapped(str(flow_run.get_id())),
    )
    summary = Summary(subject=f"{len(images)} upload(s)", outcomes=futures.result())
    publish_summary(summary, "process-images")
    publish_batch_report(summary)
    if summary.keys_with(FAILED):
        # One line, no traceback: a rejected upload is an expected outcome.
        return Failed(message=summary.failure_line(FAILED), data=summary)
    return summary
