"""Faults injected at the boto3 client, as real services produce them.

    with fail_next("dynamodb", 4, "UpdateItem") as fault:   # the next 4 UpdateItem calls: 503
        ...
    assert fault.failed == 4
    with fail_next("s3", 1, "GetObject", code="AccessDenied", message="...", status=403): ...

The answer goes through botocore's own error handling and retries, exactly as a real
`503 ServiceUnavailable` does (the same mechanism as `image_pipeline.aws.inject_faults`, with a
body in the service's protocol so the error code is the real one, not "503").
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from xml.sax.saxutils import escape

from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError

from image_pipeline.aws import client

FOREVER = 10**9

_MESSAGE = "Service is unable to handle request."


def _error_body(protocol: str, code: str, message: str) -> tuple[str, bytes]:
    """(Content-Type, body) of an error answer in the service's protocol."""
    if protocol == "json":
        text = json.dumps(
            {"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": message}
        )
        return "application/x-amz-json-1.0", text.encode()
    error = f"<Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
    if protocol == "query":
        return "text/xml", (
            f"<ErrorResponse><Error><Type>Receiver</Type>{error}</Error>"
            "<RequestId>fault</RequestId></ErrorResponse>"
        ).encode()
    assert protocol == "rest-xml", protocol
    return (
        "application/xml",
        f"<?xml version='1.0' encoding='UTF-8'?><Error>{error}</Error>".encode(),
    )


class _Body:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.data


class Fault:
    """Lets `after` matching calls through, then answers `count` with the error."""

    def __init__(self, count: int, after: int = 0) -> None:
        self.before = after
        self.remaining = count
        self.failed = 0
        self.passed = 0
        self._lock = threading.Lock()

    def restore(self) -> None:
        """The service is back: every further call goes through."""
        with self._lock:
            self.remaining = 0

    def _take(self) -> bool:
        with self._lock:
            if self.before > 0:
                self.before -= 1
                self.passed += 1
                return False
            if self.remaining > 0:
                self.remaining -= 1
                self.failed += 1
                return True
            self.passed += 1
            return False


@contextmanager
def fail_next(
    service: str,
    count: int = FOREVER,
    operation: str | None = None,
    *,
    after: int = 0,
    code: str = "ServiceUnavailable",
    message: str = _MESSAGE,
    status: int = 503,
) -> Iterator[Fault]:
    """While inside, the next `count` calls of `service` (only `operation`, if given) fail,
    once `after` of them went through: by default 503 ServiceUnavailable, or the error
    `code` with `message` and HTTP `status` (say 403 AccessDenied)."""
    aws = client(service)
    content_type, body = _error_body(aws.meta.service_model.protocol, code, message)
    fault = Fault(count, after)

    def answer(request: Any, **_: Any) -> AWSResponse | None:
        if not fault._take():
            return None
        headers = {"Content-Type": content_type, "Content-Length": str(len(body))}
        return AWSResponse(request.url, status, headers, _Body(body))

    event = f"before-send.{aws.meta.service_model.service_id.hyphenize()}"
    event += f".{operation}" if operation else ""
    aws.meta.events.register(event, answer)
    try:
        yield fault
    finally:
        aws.meta.events.unregister(event, answer)


# --- SNS's rule on characters, which MiniStack does not apply --------------------------------

# SNS message bodies and string attribute values take the characters SQS takes (XML 1.0):
# #x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD | #x10000-#x10FFFF. Anything else is refused
# with InvalidParameterValue, before any retry.
_REFUSED = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@contextmanager
def sns_refuses_invalid_characters() -> Iterator[list[str]]:
    """Make Publish refuse what real SNS refuses; yields the refusals' messages."""
    sns = client("sns")
    refusals: list[str] = []

    def check(params: dict[str, Any], **_: Any) -> None:
        texts = {"Message": params.get("Message", "")}
        for name, value in params.get("MessageAttributes", {}).items():
            texts[f"MessageAttributes.{name}"] = value.get("StringValue", "")
        for field, text in texts.items():
            if _REFUSED.search(text):
                message = f"Invalid parameter: {field} contains an invalid character."
                refusals.append(message)
                raise ClientError(
                    {
                        "Error": {"Code": "InvalidParameterValue", "Message": message},
                        "ResponseMetadata": {"HTTPStatusCode": 400},
                    },
                    "Publish",
                )

    sns.meta.events.register("provide-client-params.sns.Publish", check)
    try:
        yield refusals
    finally:
        sns.meta.events.unregister("provide-client-params.sns.Publish", check)
