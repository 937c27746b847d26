"""Clients built from a saved prefect-aws `AwsCredentials` block, read as a document.

The contract: the clients are the ones prefect-aws's own `AwsCredentials.get_client`
would build (credentials, region, endpoint, TLS verification, botocore settings), except
that our timeouts stay unless the block sets its own.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from botocore.loaders import JSONFileLoader
from prefect_aws import AwsCredentials
from prefect_aws.credentials import AwsClientParameters

from image_pipeline import aws
from image_pipeline.aws import BOTOCORE_CONFIG, client

pytestmark = pytest.mark.usefixtures("prefect_server")

BLOCKS = {
    "keys, region, endpoint, no TLS, botocore settings": AwsCredentials(
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key=f"secret-{uuid.uuid4().hex}",
        aws_session_token="session-token",
        region_name="eu-west-1",
        aws_client_parameters=AwsClientParameters(
            endpoint_url="http://127.0.0.1:9",
            use_ssl=False,
            verify=False,
            config={"read_timeout": 7, "retries": {"max_attempts": 2}},
        ),
    ),
    "region only": AwsCredentials(
        aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="x", region_name="ap-south-1"
    ),
    "CA bundle": AwsCredentials(
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="x",
        region_name="us-east-2",
        aws_client_parameters=AwsClientParameters(verify_cert_path=__file__),
    ),
}


def described(aws_client: Any) -> dict[str, Any]:
    credentials = aws_client._request_signer._credentials.get_frozen_credentials()
    return {
        "credentials": tuple(credentials),
        "region": aws_client.meta.region_name,
        "endpoint": aws_client.meta.endpoint_url,
        "verify": str(aws_client._endpoint.http_session._verify),
        "read_timeout": aws_client.meta.config.read_timeout,
        "retries": aws_client.meta.config.retries,
    }


@pytest.mark.parametrize("block", BLOCKS.values(), ids=BLOCKS.keys())
def test_a_saved_block_gives_the_client_prefect_aws_would(configure, block) -> None:
    name = f"aws-{uuid.uuid4().hex[:12]}"
    block.save(name)
    configure(aws_credentials_block=name)

    ours, theirs = described(client("s3")), described(block.get_client("s3"))

    assert ours == theirs | {"read_timeout": ours["read_timeout"], "retries": ours["retries"]}
    config = block.aws_client_parameters.config or {}
    assert ours["read_timeout"] == config.get("read_timeout", BOTOCORE_CONFIG["read_timeout"])
    expected_retries = theirs["retries"] if "retries" in config else BOTOCORE_CONFIG["retries"]
    assert ours["retries"] == expected_retries


def test_an_unknown_block_is_a_clear_error(configure) -> None:
    configure(aws_credentials_block=f"missing-{uuid.uuid4().hex[:8]}")
    with pytest.raises(LookupError, match="No AWS Credentials block named 'missing-"):
        client("dynamodb")


def test_sessions_share_the_service_models_parsed_once(monkeypatch) -> None:
    aws.parse_service_models()

    def no_file_read(*_: Any) -> None:
        raise AssertionError("a service model was read again")

    monkeypatch.setattr(JSONFileLoader, "load_file", no_file_read)
    session = aws.new_session(
        region_name="eu-west-1", aws_access_key_id="id", aws_secret_access_key="secret"
    )
    for service in aws.SERVICES:
        assert session.client(service).meta.service_model.service_name == service
