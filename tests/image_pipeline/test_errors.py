"""What a failure is told as: a sentence by the error's type, never the error's own text."""

from __future__ import annotations

import logging

import pytest
from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
    ReadTimeoutError,
)

from image_pipeline.errors import (
    RUN_ENDINGS,
    ImageRejected,
    describe_error,
    describe_run_end,
    log_error,
    run_logger,
)

ACCOUNT = "123456789012"
SECRET_TEXT = (
    f"User: arn:aws:sts::{ACCOUNT}:assumed-role/worker/x is not authorized to perform: "
    f"s3:GetObject on resource: arn:aws:s3:::private-bucket/uploads/a.jpg"
)
SEE_LOG = "an operator can find the details in the run's log."


def client_error(code: str | None, status: int = 400, message: str = SECRET_TEXT) -> ClientError:
    error = {"Message": message} | ({"Code": code} if code else {})
    return ClientError(
        {"Error": error, "ResponseMetadata": {"HTTPStatusCode": status}}, "GetObject"
    )


DENIED = "The pipeline is not allowed to read or write a resource it needs ({}); " + SEE_LOG
CREDENTIALS = "AWS refused the pipeline's credentials ({}); " + SEE_LOG
MISSING = "A bucket, table, topic or object the pipeline needs does not exist ({}); " + SEE_LOG
UNAVAILABLE = "An AWS service was unavailable after retries ({})."
REFUSED = "An AWS service refused a request ({}); " + SEE_LOG


@pytest.mark.parametrize(
    ("code", "status", "sentence"),
    [
        ("AccessDenied", 403, DENIED),  # S3
        ("AccessDeniedException", 400, DENIED),  # DynamoDB, Rekognition
        ("AuthorizationError", 403, DENIED),  # SNS
        ("ExpiredToken", 400, CREDENTIALS),
        ("InvalidAccessKeyId", 403, CREDENTIALS),
        ("NoSuchBucket", 404, MISSING),
        ("ResourceNotFoundException", 400, MISSING),
        ("ServiceUnavailable", 503, UNAVAILABLE),
        ("ThrottlingException", 400, UNAVAILABLE),
        ("SomethingNew", 502, UNAVAILABLE),  # any 5xx
        ("ValidationException", 400, REFUSED),
        (None, 400, REFUSED),
    ],
)
def test_aws_errors_are_told_by_their_code(code: str | None, status: int, sentence: str) -> None:
    error_type = code or "ClientError"
    message = sentence.format(error_type)
    assert describe_error(client_error(code, status)) == (error_type, message)
    assert ACCOUNT not in message and "arn:" not in message


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (
            EndpointConnectionError(endpoint_url=f"https://{ACCOUNT}.s3.amazonaws.com"),
            "An AWS service was unavailable after retries (EndpointConnectionError).",
        ),
        (
            ReadTimeoutError(endpoint_url=f"https://{ACCOUNT}.s3.amazonaws.com"),
            "An AWS service was unavailable after retries (ReadTimeoutError).",
        ),
        (
            NoCredentialsError(),
            f"The pipeline has no usable AWS credentials (NoCredentialsError); {SEE_LOG}",
        ),
        (
            ParamValidationError(report=f"Invalid bucket name {ACCOUNT}"),
            f"The AWS client failed (ParamValidationError); {SEE_LOG}",
        ),
    ],
)
def test_botocore_errors_are_told_by_their_type(error: Exception, message: str) -> None:
    assert describe_error(error) == (type(error).__name__, message)
    assert str(error) not in message and ACCOUNT not in message


def test_unexpected_errors_are_told_by_their_type_only() -> None:
    assert describe_error(KeyError(SECRET_TEXT)) == (
        "KeyError",
        "An unexpected error occurred (KeyError); the run's log has the details.",
    )


def test_our_own_rejections_are_told_as_we_wrote_them() -> None:
    rejection = ImageRejected("FileTooLarge", "The file is 60.0 MB, over the 50.0 MB limit.")
    assert describe_error(rejection) == (
        "FileTooLarge",
        "The file is 60.0 MB, over the 50.0 MB limit.",
    )


@pytest.mark.parametrize("error_type", sorted(RUN_ENDINGS))
def test_run_endings_name_the_type_and_where_to_look(error_type: str) -> None:
    message = describe_run_end(error_type)
    assert f"({error_type})" in message
    assert message.endswith("; the flow run's state and log in Prefect have the details.")


def test_log_error_keeps_the_text_and_the_traceback_of_the_unexpected(caplog) -> None:
    logger = logging.getLogger("test_errors")
    try:
        raise KeyError(SECRET_TEXT)
    except KeyError as exc:
        unexpected = exc
    with caplog.at_level(logging.INFO, logger="test_errors"):
        log_error(logger, client_error("AccessDenied", 403), "The run failed")
        log_error(logger, unexpected, "The run failed")
        log_error(logger, ImageRejected("NotAnImage", "The file is not an image."), "Rejected")

    aws, bug, rejected = caplog.records
    assert (aws.levelno, aws.exc_info) == (logging.ERROR, None)
    assert aws.getMessage().startswith("The run failed: AccessDenied: An error occurred")
    assert SECRET_TEXT in aws.getMessage()
    assert bug.levelno == logging.ERROR and bug.exc_info and bug.exc_info[1] is unexpected
    assert SECRET_TEXT in bug.getMessage()
    assert "Traceback" in caplog.text and "raise KeyError" in caplog.text
    assert rejected.levelno == logging.INFO
    assert rejected.getMessage() == "Rejected: NotAnImage: The file is not an image."


def test_run_logger_outside_a_run_is_the_named_logger() -> None:
    assert run_logger("image_pipeline.somewhere") is logging.getLogger("image_pipeline.somewhere")
