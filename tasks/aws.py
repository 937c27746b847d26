"""The one place that knows whether we talk to AWS or to a local emulator.

Clients come from a prefect-aws `AwsCredentials` block: a saved one when
`IMAGE_PIPELINE_AWS_CREDENTIALS_BLOCK` names it, otherwise one built from the
environment. Clients are built once per process and shared (boto3 clients are
thread-safe).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError, ConnectionError, HTTPClientError, ReadTimeoutError
from prefect_aws import AwsCredentials
from prefect_aws.credentials import AwsClientParameters

from tasks.settings import get_settings

# botocore retries quickly inside one call; Prefect's task retries handle longer outages.
BOTOCORE_CONFIG: dict[str, Any] = {
    "retries": {"mode": "standard", "total_max_attempts": 3},
    "connect_timeout": 5,
    "read_timeout": 30,
    "max_pool_connections": 32,
}

TRANSIENT_ERROR_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "RequestThrottled",
        "SlowDown",
        "InternalError",
        "InternalServerError",
        "InternalFailure",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
        "TransactionInProgressException",
    }
)


@lru_cache
def aws_credentials() -> AwsCredentials:
    settings = get_settings()
    if settings.aws_credentials_block:
        return AwsCredentials.load(settings.aws_credentials_block, _sync=True)
    return AwsCredentials(
        region_name=settings.aws_region,
        aws_client_parameters=AwsClientParameters(
            endpoint_url=settings.aws_endpoint_url, config=BOTOCORE_CONFIG
        ),
    )


@lru_cache
def client(service: str) -> Any:
    """A boto3 client for `service` ("s3", "dynamodb", "sns", "rekognition")."""
    settings = get_settings()
    if service == "rekognition" and settings.rekognition_endpoint_url:
        session = aws_credentials().get_boto3_session()
        new_client = session.client(
            "rekognition",
            endpoint_url=settings.rekognition_endpoint_url,
            config=_botocore_config(),
        )
    else:
        new_client = aws_credentials().get_client(service)
    if settings.fault_rate:
        inject_faults(new_client, settings.fault_rate)
    return new_client


class _EmptyBody:
    def stream(self, **_: Any) -> Iterator[bytes]:
        yield b""


def inject_faults(
    aws_client: Any, rate: float, chance: Callable[[], float] = random.random
) -> None:
    """Answer a share of the client's calls with 503 before they are sent (chaos testing).

    The fake answer goes through botocore's normal error handling and retries, exactly
    as a real ServiceUnavailable would.
    """

    def maybe_fail(request: Any, **_: Any) -> AWSResponse | None:
        if chance() < rate:
            return AWSResponse(request.url, 503, {}, _EmptyBody())
        return None

    aws_client.meta.events.register("before-send", maybe_fail)


def _botocore_config() -> Any:
    from botocore.config import Config

    return Config(**BOTOCORE_CONFIG)


def error_code(exc: BaseException) -> str | None:
    if isinstance(exc, ClientError):
        return exc.response.get("Error", {}).get("Code")
    return None


def is_transient(exc: BaseException) -> bool:
    """True for AWS errors worth retrying: throttling, 5xx, timeouts, lost connections."""
    if isinstance(exc, ConnectionError | HTTPClientError | ReadTimeoutError):
        return True
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return error_code(exc) in TRANSIENT_ERROR_CODES or status >= 500
    return False
