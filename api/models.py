"""Response bodies of the API, kept apart from the stored items so the OpenAPI is exact."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Message(BaseModel):
    """The body of every error response."""

    message: str


class ValidationMessage(Message):
    detail: list[dict[str, Any]] = Field(description="What pydantic found wrong, field by field.")


class Status(BaseModel):
    status: str = Field(examples=["ok"])


class WebhookResult(BaseModel):
    message: str = Field(examples=["accepted"])
    accepted: bool = Field(description="False when the event is not for this pipeline.")
    event_id: str | None = Field(
        None, description="Id of the Prefect event sent; the same upload always gets the same id."
    )


# OpenAPI entries for the error responses that routes share.
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": Message}}
UNAVAILABLE: dict[int | str, dict[str, Any]] = {503: {"model": Message}}
INVALID: dict[int | str, dict[str, Any]] = {422: {"model": ValidationMessage}}
