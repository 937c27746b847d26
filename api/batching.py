"""Hold the webhook's uploads for a short window and send them to Prefect as one event.

A flow run costs more than the image it processes (a new interpreter and Prefect's
run machinery, about 1.8 s), so a burst of uploads becomes a few runs of many images.
A batch goes once no upload has joined it for `quiet` seconds, or `window` seconds after
its first upload, or at once when full (a `threading.Timer`, started again as each upload
joins): a lone upload waits only the quiet gap, while a burst fills batches of many.
Every request waits on its batch's `Future`, which gives the batch event's id once Prefect
has taken it, or Prefect's error.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from api.events import batch_event
from api.prefect_events import PrefectUnavailable

logger = logging.getLogger(__name__)

Emit = Callable[[dict[str, Any]], None]


@dataclass(eq=False)
class _Batch:
    emit: Emit  # the first request's: its Prefect settings are the ones in force
    deadline: float  # time.monotonic() by which it goes, however busy
    timer: threading.Timer | None = None
    images: dict[str, dict[str, Any]] = field(default_factory=dict)  # by per-image id
    sent: Future[str] = field(default_factory=Future)


class Batcher:
    """Thread-safe; one per app, so that apps (and tests) never share a batch."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: _Batch | None = None
        self._sending: set[Future[str]] = set()

    def add(
        self,
        image: dict[str, Any],
        emit: Emit,
        window: float,
        max_images: int,
        quiet: float,
    ) -> Future[str]:
        """Put an upload (from `api.events.image`) in the open batch, or start one.

        The batch goes `quiet` seconds after its last upload (never later than `window`
        after its first), or at once when full. The future gives the id of the event that
        carried it, or raises what `emit` raised.
        """
        with self._lock:
            batch = self._open
            if batch is None:
                batch = self._open = _Batch(emit, deadline=time.monotonic() + window)
            # A duplicate delivery joins its first copy: one image, one answer for both.
            batch.images.setdefault(image["event_id"], image)
            full = len(batch.images) >= max_images
            if full:
                self._close(batch)
            else:
                self._wait(batch, quiet)
        if full:
            # Not in this thread: the caller may be the event loop.
            threading.Thread(target=self._send, args=(batch,), daemon=True).start()
        return batch.sent

    def _wait(self, batch: _Batch, quiet: float) -> None:
        """(Re)start the batch's timer: `quiet` from now, within its deadline."""
        if batch.timer is not None:
            batch.timer.cancel()
        delay = max(0.0, min(quiet, batch.deadline - time.monotonic()))
        batch.timer = threading.Timer(delay, self._send_if_open, args=(batch,))
        batch.timer.daemon = True
        batch.timer.start()

    def close(self, timeout: float) -> None:
        """Send the open batch now and wait for those being sent: the app is stopping, and
        their HTTP client closes next."""
        with self._lock:
            batch = self._open
            if batch is not None:
                self._close(batch)
            sending = list(self._sending)
        if batch is not None:
            self._send(batch)
        concurrent.futures.wait(sending, timeout=timeout)

    def _send_if_open(self, batch: _Batch) -> None:
        with self._lock:
            if self._open is not batch:  # it filled up and went before its window ended
                return
            self._close(batch)
        self._send(batch)

    def _close(self, batch: _Batch) -> None:
        """No upload joins `batch` from now on; the caller holds the lock and sends it."""
        self._open = None
        if batch.timer is not None:
            batch.timer.cancel()
        self._sending.add(batch.sent)

    def _send(self, batch: _Batch) -> None:
        event = batch_event(list(batch.images.values()), datetime.now(UTC))
        try:
            batch.emit(event)
        except PrefectUnavailable as exc:
            logger.warning(
                "Prefect did not take event %s (%d uploads): %s",
                event["id"],
                len(batch.images),
                exc,
            )
            batch.sent.set_exception(exc)
        except Exception as exc:
            # Every waiting request must still get an answer, not wait for its timeout.
            logger.exception("Sending event %s failed", event["id"])
            batch.sent.set_exception(exc)
        else:
            batch.sent.set_result(event["id"])
        finally:
            with self._lock:
                self._sending.discard(batch.sent)
