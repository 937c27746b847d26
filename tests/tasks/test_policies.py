"""The retry conditions: transient AWS or Prefect trouble retries, anything else never does."""

from __future__ import annotations

import httpx
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from prefect.states import Failed

from image_pipeline.errors import ImageRejected, Superseded
from tasks.policies import prefect_unavailable, retry_transient


def client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "x"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "GetObject",
    )


@pytest.mark.parametrize(
    ("exc", "retry"),
    [
        (client_error("ThrottlingException", 400), True),
        (client_error("InternalError", 500), True),
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:9"), True),
        (client_error("AccessDenied", 403), False),
        (ImageRejected("CorruptImage", "broken"), False),
        (Superseded("changed"), False),
        (ValueError("a bug"), False),
    ],
)
def test_retry_only_transient_aws_failures(exc: Exception, retry: bool) -> None:
    # The engine hands the condition a Failed state carrying the exception, like this one.
    assert retry_transient(None, None, Failed(data=exc)) is retry


def _status_error(status: int) -> httpx.HTTPStatusError:
    request = httpx.Request("GET", "http://127.0.0.1:9/api")
    return httpx.HTTPStatusError("x", request=request, response=httpx.Response(status))


@pytest.mark.parametrize(
    ("exc", "retry"),
    [
        (_status_error(503), True),
        (httpx.ConnectError("refused"), True),
        (_status_error(404), False),
        (ValueError("a bug"), False),
    ],
)
def test_retry_prefect_only_when_it_is_unavailable(exc: Exception, retry: bool) -> None:
    assert prefect_unavailable(None, None, Failed(data=exc)) is retry
