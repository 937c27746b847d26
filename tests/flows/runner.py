"""Run the async process-image flow from synchronous tests."""

from __future__ import annotations

import asyncio
from typing import Any

from flows.process_image import process_image


def run_process_image(*args: Any, **kwargs: Any) -> Any:
    return asyncio.run(process_image(*args, **kwargs))
