"""The batcher on its own: real timers and threads, a recording `emit` instead of Prefect."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest

from api.batching import Batcher
from api.events import batch_event_id
from api.prefect_events import PrefectUnavailable

# Bounds every wait on a result: far longer than any short window, far shorter than a
# long one, so a batch that waited for a 30 s window fails the test.
ANSWER = 10.0


class Recorder:
    """An `emit` that records the events it is given and raises `error` when set."""

    def __init__(self, error: Exception | None = None) -> None:
        self.events: list[dict[str, Any]] = []
        self.error = error
        self.lock = threading.Lock()

    def __call__(self, event: dict[str, Any]) -> None:
        with self.lock:
            self.events.append(event)
        if self.error:
            raise self.error

    def keys(self) -> list[list[str]]:
        return [[i["key"] for i in event["payload"]["images"]] for event in self.events]


def upload(key: str) -> dict[str, Any]:
    return {"bucket": "b", "key": key, "event_id": str(uuid.uuid4())}


def test_a_full_batch_is_sent_at_once() -> None:
    emit, batcher = Recorder(), Batcher()
    images = [upload(f"uploads/{n}.jpg") for n in range(3)]
    sent = [batcher.add(i, emit, window=30, max_images=3, quiet=30) for i in images]
    ids = {future.result(timeout=ANSWER) for future in sent}
    assert ids == {str(batch_event_id(i["event_id"] for i in images))}
    assert emit.keys() == [["uploads/0.jpg", "uploads/1.jpg", "uploads/2.jpg"]]


def test_the_window_sends_what_arrived_in_it() -> None:
    emit, batcher = Recorder(), Batcher()
    sent = [
        batcher.add(upload(k), emit, window=0.05, max_images=50, quiet=0.05) for k in ("a", "b")
    ]
    assert sent[0] is sent[1]
    sent[0].result(timeout=ANSWER)
    assert emit.keys() == [["a", "b"]]


def test_a_lone_upload_goes_after_the_quiet_gap_not_the_window() -> None:
    emit, batcher = Recorder(), Batcher()
    sent = batcher.add(upload("a"), emit, window=30, max_images=50, quiet=0.05)
    sent.result(timeout=ANSWER)
    assert emit.keys() == [["a"]]


def test_uploads_within_the_quiet_gap_go_together() -> None:
    emit, batcher = Recorder(), Batcher()
    sent = [batcher.add(upload(k), emit, window=30, max_images=50, quiet=2) for k in "abc"]
    assert sent[0] is sent[1] is sent[2]
    sent[0].result(timeout=ANSWER)
    assert emit.keys() == [["a", "b", "c"]]


def test_the_window_ends_a_batch_that_keeps_receiving() -> None:
    """Each upload restarts the quiet gap, but never past the window of the first."""
    emit, batcher = Recorder(), Batcher()
    sent = [batcher.add(upload(k), emit, window=0.05, max_images=50, quiet=30) for k in "ab"]
    sent[0].result(timeout=ANSWER)
    assert emit.keys() == [["a", "b"]]


def test_uploads_after_a_batch_went_start_another() -> None:
    emit, batcher = Recorder(), Batcher()
    first = batcher.add(upload("a"), emit, window=30, max_images=1, quiet=30)
    first.result(timeout=ANSWER)
    second = batcher.add(upload("b"), emit, window=30, max_images=1, quiet=30)
    assert second is not first
    assert second.result(timeout=ANSWER) != first.result()
    assert emit.keys() == [["a"], ["b"]]


def test_a_duplicate_joins_its_first_copy() -> None:
    emit, batcher = Recorder(), Batcher()
    image = upload("a")
    redelivered = image | {"eventbridge_id": "another envelope"}
    sent = [batcher.add(i, emit, window=30, max_images=2, quiet=30) for i in (image, redelivered)]
    sent.append(batcher.add(upload("b"), emit, window=30, max_images=2, quiet=30))
    assert sent[0] is sent[1] is sent[2]  # the duplicate did not count towards max_images
    sent[0].result(timeout=ANSWER)
    [event] = emit.events
    assert event["payload"]["images"][0] == image


@pytest.mark.parametrize("error", [PrefectUnavailable("HTTP 500"), RuntimeError("bug")])
def test_an_error_reaches_every_upload_of_the_batch(error: Exception) -> None:
    emit, batcher = Recorder(error), Batcher()
    sent = [batcher.add(upload(k), emit, window=30, max_images=2, quiet=30) for k in ("a", "b")]
    for future in sent:
        with pytest.raises(type(error)):
            future.result(timeout=ANSWER)
    assert len(emit.events) == 1


def test_close_sends_the_open_batch_and_waits_for_those_being_sent() -> None:
    release = threading.Event()
    entered = threading.Event()

    def slow_emit(event: dict[str, Any]) -> None:
        entered.set()
        assert release.wait(ANSWER)

    batcher = Batcher()
    being_sent = batcher.add(upload("a"), slow_emit, window=30, max_images=1, quiet=30)
    assert entered.wait(ANSWER)
    emit = Recorder()
    still_open = batcher.add(upload("b"), emit, window=30, max_images=50, quiet=30)
    closed = threading.Thread(target=batcher.close, args=(ANSWER,))
    closed.start()
    assert still_open.result(timeout=ANSWER)  # sent without waiting for its window
    assert not being_sent.done()
    assert closed.is_alive()  # waiting for the batch being sent
    release.set()
    closed.join(ANSWER)
    assert not closed.is_alive()
    assert being_sent.done() and emit.keys() == [["b"]]
