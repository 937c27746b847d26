"""Provision the local emulator and register the pipeline with the Prefect server.

Run by the local stack with its environment (`python -m deployments.local.bootstrap
WEBHOOK_URL`): saves the AwsCredentials block that points at the emulator, creates the
AWS resources and wires S3 → EventBridge → the webhook.
"""

from __future__ import annotations

import sys

from prefect_aws import AwsCredentials
from prefect_aws.credentials import AwsClientParameters

from deployments.local.provision import provision, provision_event_path
from image_pipeline.settings import get_settings


def main(webhook_url: str) -> None:
    settings = get_settings()
    if settings.aws_credentials_block is None or settings.webhook_api_key is None:
        raise SystemExit(
            "bootstrap needs IMAGE_PIPELINE_AWS_CREDENTIALS_BLOCK and _WEBHOOK_API_KEY"
        )
    AwsCredentials(
        region_name=settings.aws_region,
        aws_client_parameters=AwsClientParameters(endpoint_url=settings.aws_endpoint_url),
    ).save(settings.aws_credentials_block, overwrite=True)
    provision()
    provision_event_path(webhook_url, settings.webhook_api_key.get_secret_value())


if __name__ == "__main__":
    main(sys.argv[1])
