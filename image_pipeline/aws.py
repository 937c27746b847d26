"""The one place that knows whether we talk to AWS or to a local emulator.

Credentials and endpoint come from a prefect-aws `AwsCredentials` block when
`IMAGE_PIPELINE_AWS_CREDENTIALS_BLOCK` names one, otherwise from the environment. Clients
are built once per process from one boto3 session and shared (they are thread-safe).

The block is read as a document through Prefect's client rather than with
`AwsCredentials.load`: importing `prefect_aws` costs every flow-run process about 0.55 s
(its ECS worker and aiobotocore), more than all of the flow's tasks. Only a block that
assumes a role, which needs prefect-aws's own session logic, goes through prefect_aws.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import Any

import boto3
import botocore.session
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionError, HTTPClientError, ReadTimeoutError
from pydantic import BaseModel, SecretStr

from image_pipeline.settings import get_settings

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


# What S3 answers when the object (or the version asked for) is not there.
GONE = frozenset({"NoSuchKey", "404", "NotFound"})


class ClientParameters(BaseModel):
    """The `aws_client_parameters` of an `AwsCredentials` block document."""

    api_version: str | None = None
    use_ssl: bool = True
    verify: bool | str | None = True
    verify_cert_path: str | None = None
    endpoint_url: str | None = None
    config: dict[str, Any] | None = None

    def client_kwargs(self) -> dict[str, Any]:
        """What prefect-aws's `AwsClientParameters.get_params_override` gives boto3."""
        kwargs: dict[str, Any] = {"use_ssl": self.use_ssl, "config": Config(**BOTOCORE_CONFIG)}
        # Unlike prefect-aws, our timeouts and retry mode stay unless the block overrides them.
        if self.verify_cert_path or self.verify is not None:
            kwargs["verify"] = self.verify_cert_path or self.verify
        if self.api_version:
            kwargs["api_version"] = self.api_version
        if self.endpoint_url:
            kwargs["endpoint_url"] = self.endpoint_url
        if self.config:
            kwargs["config"] = kwargs["config"].merge(Config(**self.config))
        return kwargs


class CredentialsDocument(BaseModel):
    """The fields of a prefect-aws `AwsCredentials` block document that boto3 needs."""

    aws_access_key_id: str | None = None
    aws_secret_access_key: SecretStr | None = None
    aws_session_token: SecretStr | None = None
    profile_name: str | None = None
    region_name: str | None = None
    aws_client_parameters: ClientParameters = ClientParameters()
    assume_role_arn: str | None = None

    def session(self) -> boto3.Session:
        secret, token = self.aws_secret_access_key, self.aws_session_token
        return new_session(
            aws_access_key_id=self.aws_access_key_id,
            aws_secret_access_key=secret.get_secret_value() if secret else None,
            aws_session_token=token.get_secret_value() if token else None,
            profile_name=self.profile_name,
            region_name=self.region_name,
        )


def read_credentials_block(name: str) -> dict[str, Any]:
    """The saved `AwsCredentials` block `name`, secrets included, as a plain document."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as prefect:
        try:
            document = prefect.read_block_document_by_name(
                name, block_type_slug="aws-credentials", include_secrets=True
            )
        except ObjectNotFound as exc:
            raise LookupError(
                f"No AWS Credentials block named {name!r} "
                "(IMAGE_PIPELINE_AWS_CREDENTIALS_BLOCK) on the Prefect server"
            ) from exc
    return document.data


@lru_cache
def session_and_client_kwargs() -> tuple[boto3.Session, dict[str, Any]]:
    """The boto3 session every client shares, and the arguments each client gets."""
    settings = get_settings()
    if not settings.aws_credentials_block:
        parameters = ClientParameters(endpoint_url=settings.aws_endpoint_url)
        return new_session(region_name=settings.aws_region), parameters.client_kwargs()
    document = CredentialsDocument.model_validate(
        read_credentials_block(settings.aws_credentials_block)
    )
    if document.assume_role_arn:
        from prefect_aws import AwsCredentials

        block = AwsCredentials.load(settings.aws_credentials_block, _sync=True)
        parameters = block.aws_client_parameters.get_params_override()
        return block.get_boto3_session(), {"config": Config(**BOTOCORE_CONFIG), **parameters}
    return document.session(), document.aws_client_parameters.client_kwargs()


# Every session shares one botocore loader, so that a service's model (S3's is 1 MB of JSON)
# is parsed once per process instead of once per session, and, in the warm worker's
# forkserver, once for all runs (`parse_service_models`): about 0.13 s of a run's first
# AWS calls.
_LOADER = botocore.session.get_session().get_component("data_loader")
SERVICES = ("s3", "dynamodb", "sns", "rekognition")


def new_session(**kwargs: Any) -> boto3.Session:
    """A boto3 session (`boto3.Session`'s arguments) that reads models from the shared loader."""
    core = botocore.session.get_session()
    core.register_component("data_loader", _LOADER)
    return boto3.Session(botocore_session=core, **kwargs)


def parse_service_models() -> None:
    """Parse what building a client of each of SERVICES reads, into the shared loader."""
    session = new_session(
        region_name="us-east-1", aws_access_key_id="parse", aws_secret_access_key="parse"
    )
    for service in SERVICES:
        session.client(service)


_BUILDING = threading.Lock()  # one build per client when threads (backfill) ask at once


def client(service: str) -> Any:
    """A boto3 client for `service` ("s3", "dynamodb", "sns", "rekognition")."""
    with _BUILDING:
        return _cached_client(service)


def forget_clients() -> None:
    """Drop the cached session and clients (after the settings changed)."""
    with _BUILDING:
        _cached_client.cache_clear()
        _presigning_s3.cache_clear()
        session_and_client_kwargs.cache_clear()


def presigned_get_url(bucket: str, key: str, expires_in: int) -> str:
    """A URL that lets anyone GET the object for `expires_in` seconds, signed with SigV4:
    S3 refuses the older Signature Version 2 for buckets created since mid-2020."""
    with _BUILDING:
        s3 = _presigning_s3()
    return s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires_in
    )


@lru_cache
def _presigning_s3() -> Any:
    session, kwargs = session_and_client_kwargs()
    config = kwargs["config"].merge(Config(signature_version="s3v4"))
    return session.client("s3", **{**kwargs, "config": config})


@lru_cache
def _cached_client(service: str) -> Any:
    settings = get_settings()
    session, kwargs = session_and_client_kwargs()
    if service == "rekognition" and settings.rekognition_endpoint_url:
        kwargs = {**kwargs, "endpoint_url": settings.rekognition_endpoint_url}
    new_client = session.client(service, **kwargs)
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
