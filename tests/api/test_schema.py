"""Fuzz every route from the app's own OpenAPI document (schemathesis), over real HTTP.

Each operation gets a handful of generated requests, sent with both keys (the webhook's
`x-api-key` and the operator's bearer token) so that the protected routes are exercised
beyond their key check. No answer may be a 500,
and every answer (status, content type, body) must be one the document declares.
"""

from __future__ import annotations

import httpx
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import Case
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.main import app
from tests.api.conftest import bearer

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


# The document as the app serves it (checked below), loaded at collection time so that each
# operation is a test of its own. Its requests go to the live server, not into the app.
# (`schemathesis.pytest.from_fixture` would load it from the server, but 4.32 fails on
# pytest 9: it sets `Function._nodeid`, which pytest 9 no longer has.)
schema = schemathesis.openapi.from_dict(app.openapi())


def test_the_fuzzed_document_is_the_served_one(api: str) -> None:
    assert httpx.get(f"{api}/openapi.json").json() == app.openapi()


@schema.parametrize()
@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_answer_is_declared_and_none_is_a_server_error(
    case: Case, api: str, webhook_key: str, operator_key: str, prefect_server: None
) -> None:
    keys = {"x-api-key": webhook_key} | bearer(operator_key)
    case.call_and_validate(base_url=api, headers=keys, checks=CHECKS, timeout=30)
