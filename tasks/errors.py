"""Errors that decide what the pipeline does next."""

from __future__ import annotations


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
