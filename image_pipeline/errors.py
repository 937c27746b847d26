"""Errors that decide what the pipeline does next."""

from __future__ import annotations

from botocore.exceptions import ClientError


class ImageRejected(Exception):
    """A permanent problem with the image itself. Retrying cannot help, so nothing retries it.

    `error_type` is a short stable code stored in the item (`EmptyFile`, `NotAnImage`,
    `UnsupportedFormat`, `FileTooLarge`, `TooManyPixels`, `CorruptImage`, ...).
    """

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message


class Superseded(Exception):
    """The object changed (re-uploaded or deleted) since the event this run is about."""


def describe_error(error: BaseException) -> tuple[str, str]:
    """(error_type, message) as the item and the failure notice show them."""
    if isinstance(error, ImageRejected):
        return error.error_type, error.message
    if isinstance(error, ClientError):
        return error.response.get("Error", {}).get("Code") or "ClientError", str(error)
    return type(error).__name__, str(error) or repr(error)
