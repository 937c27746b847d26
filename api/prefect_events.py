"""Send events to the Prefect server's REST API (`POST {PREFECT_API_URL}/events`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

# Every call the API makes to Prefect: EventBridge gives an API destination 5 s to answer,
# so leave room to answer 503 in time; a person asking to reprocess gets the same bound.
TIMEOUT = httpx.Timeout(3.0)
# How long the webhook waits for Prefect's answer (which takes milliseconds when all is
# well) before answering 503: the read timeout above and a margin, within EventBridge's 5 s.
ANSWER_SECONDS = 3.5


class PrefectUnavailable(Exception):
    """Prefect did not answer, or refused the request; the reason never includes the API key."""


@dataclass(frozen=True)
class PrefectEvents:
    http: httpx.Client
    api_url: str | None
    api_key: str | None

    def emit(self, event: dict[str, Any]) -> None:
        """Post one event; Prefect answers 204 and keeps a single copy per event id."""
        if not self.api_url:
            raise PrefectUnavailable("PREFECT_API_URL is not set")
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        try:
            response = self.http.post(
                f"{self.api_url.rstrip('/')}/events", json=[event], headers=headers
            )
        except httpx.HTTPError as exc:
            raise PrefectUnavailable(f"{type(exc).__name__}: {exc}") from exc
        if not response.is_success:
            raise PrefectUnavailable(f"HTTP {response.status_code}: {response.text[:300]}")
