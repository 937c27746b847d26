"""Errors that decide what the pipeline does next, and how a failure is told to users.

The item, the status API and the SNS notice show a short sentence chosen by the error's
type (`describe_error`), never the error's own text: AWS errors carry role ARNs, account
ids and resource names, and unexpected exceptions carry anything at all. That text goes
to the Prefect run's log (`log_error`), where operators look. The pipeline's own
rejections (`ImageRejected`) are the exception: we wrote their messages for users.
"""

from __future__ import annotations

import logging

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    CredentialRetrievalError,
    NoCredentialsError,
    PartialCredentialsError,
)
from prefect.exceptions import MissingContextError
from prefect.logging import get_run_logger

from image_pipeline.aws import error_code, is_transient


class ImageRejected(Exception):
    """A permanent problem with the image itself. Retrying cannot help, so nothing retries it.

    `error_type` is a short stable code stored in the item (`EmptyFile`, `NotAnImage`,
    `UnsupportedFormat`, `FileTooLarge`, `TooManyPixels`, `CorruptImage`, ...). `message`
    is shown to users as it is: it names sizes, formats and limits, never internals.
    """

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message

    @property
    def summary(self) -> str:
        """One line naming the type and the reason: `NotAnImage: The file is not ...`."""
        return f"{self.error_type}: {self.message}"


class Superseded(Exception):
    """The object changed (re-uploaded or deleted) since the event this run is about."""


SEE_LOG = "an operator can find the details in the run's log"

# AWS error codes by what they mean for the pipeline; the sentence names the code.
DENIED_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "AllAccessDisabled",
        "AuthorizationError",
        "AuthorizationErrorException",
        "Forbidden",
        "403",
        "KMSAccessDeniedException",
        "UnauthorizedOperation",
    }
)
CREDENTIALS_CODES = frozenset(
    {
        "ExpiredToken",
        "ExpiredTokenException",
        "IncompleteSignature",
        "InvalidAccessKeyId",
        "InvalidClientTokenId",
        "InvalidSignatureException",
        "InvalidToken",
        "MissingAuthenticationToken",
        "RequestExpired",
        "SignatureDoesNotMatch",
        "TokenRefreshRequired",
        "UnrecognizedClientException",
    }
)
MISSING_CODES = frozenset(
    {"NoSuchBucket", "NoSuchKey", "NotFound", "404", "ResourceNotFoundException"}
)

# Why a flow run ended without an error from a step: the hooks' and the reconciler's reasons.
RUN_ENDINGS = {
    "Crashed": "The flow-run process stopped before the run finished (Crashed)",
    "FlowFailed": "The flow run failed (FlowFailed)",
    "Cancelled": "The flow run was cancelled (Cancelled)",
    "Orphaned": "The flow run ended without recording a result for the image (Orphaned)",
}
RUN_DETAILS = "the flow run's state and log in Prefect have the details"


def describe_error(error: BaseException) -> tuple[str, str]:
    """(error_type, message) as the item and the failure notice show them.

    `error_type` is the AWS error code or the exception's type name (readers filter on
    it); `message` is a sentence chosen by that type, safe to show to anyone.
    """
    if isinstance(error, ImageRejected):
        return error.error_type, error.message
    if isinstance(error, ClientError):
        code = error_code(error) or "ClientError"
        return code, _client_error_sentence(code, error)
    name = type(error).__name__
    if isinstance(error, BotoCoreError):
        return name, _botocore_sentence(name, error)
    return name, f"An unexpected error occurred ({name}); the run's log has the details."


def _client_error_sentence(code: str, error: ClientError) -> str:
    if code in DENIED_CODES:
        what = "The pipeline is not allowed to read or write a resource it needs"
    elif code in CREDENTIALS_CODES:
        what = "AWS refused the pipeline's credentials"
    elif code in MISSING_CODES:
        what = "A bucket, table, topic or object the pipeline needs does not exist"
    elif is_transient(error):
        return f"An AWS service was unavailable after retries ({code})."
    else:
        what = "An AWS service refused a request"
    return f"{what} ({code}); {SEE_LOG}."


def _botocore_sentence(name: str, error: BotoCoreError) -> str:
    if isinstance(error, NoCredentialsError | PartialCredentialsError | CredentialRetrievalError):
        return f"The pipeline has no usable AWS credentials ({name}); {SEE_LOG}."
    if is_transient(error):
        return f"An AWS service was unavailable after retries ({name})."
    return f"The AWS client failed ({name}); {SEE_LOG}."


def describe_run_end(error_type: str) -> str:
    """The sentence for a run that ended `error_type` (`RUN_ENDINGS`) with no error of ours."""
    ending = RUN_ENDINGS.get(error_type, f"The flow run ended ({error_type})")
    return f"{ending}; {RUN_DETAILS}."


def run_logger(fallback: str) -> logging.Logger | logging.LoggerAdapter:
    """The current Prefect run's logger, whose lines reach the run's log in the Prefect UI;
    outside a run (plain calls in tests and scripts), the standard logger `fallback`."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(fallback)


def log_error(
    logger: logging.Logger | logging.LoggerAdapter, error: BaseException, what: str
) -> None:
    """The error as it was raised, for operators: what `describe_error` leaves out.

    Our own rejections are expected (INFO); AWS errors are logged with their full text;
    anything else with its traceback.
    """
    error_type = describe_error(error)[0]
    if isinstance(error, ImageRejected):
        logger.info("%s: %s: %s", what, error_type, error.message)
    elif isinstance(error, ClientError | BotoCoreError):
        logger.error("%s: %s: %s", what, error_type, error)
    else:
        logger.error("%s: %s: %s", what, error_type, error, exc_info=error)
