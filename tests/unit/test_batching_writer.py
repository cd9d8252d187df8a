"""The one batching writer both event stores use: batches, outages said once, drops counted."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import pytest

from mnist_contracts.event_store.writer import BatchingWriter


class Store:
    """A store that can be taken down: ``deliver`` raises OSError while it is down."""

    def __init__(self) -> None:
        self.down = threading.Event()
        self.batches: list[list[int]] = []

    def deliver(self, batch: list[int]) -> None:
        if self.down.is_set():
            raise OSError("store down")
        self.batches.append(batch)


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


def test_events_are_delivered_in_batches_and_once_each() -> None:
    store = Store()
    delivered: list[int] = []
    writer = BatchingWriter("test store", store.deliver, (OSError,), capacity=1000, batch=50,
                            linger_s=0.05, on_delivered=delivered.append)  # fmt: skip
    for i in range(200):
        writer.put([i])
    assert writer.flush(5.0)
    writer.close()
    assert sorted(e for b in store.batches for e in b) == list(range(200))
    assert max(len(b) for b in store.batches) <= 50
    assert len(store.batches) < 200  # gathered, not one delivery per event
    assert sum(delivered) == writer.delivered == 200


def test_an_outage_is_said_once_buffered_then_delivered(caplog: pytest.LogCaptureFixture) -> None:
    store, states, dropped = Store(), list[bool](), list[int]()
    writer = BatchingWriter("test store", store.deliver, (OSError,), capacity=30, batch=10,
                            on_available=states.append, on_dropped=dropped.append)  # fmt: skip
    store.down.set()
    with caplog.at_level(logging.WARNING, "mnist_contracts.event_store.writer"):
        for i in range(50):
            writer.put([i])
        assert wait_until(lambda: not writer.available)
        assert sum(dropped) == 20  # 30 held (buffer and the batch in flight), the rest dropped
        store.down.clear()
        assert wait_until(lambda: writer.available)
        assert writer.flush(5.0)
        writer.close()
    assert states == [False, True]
    messages = [r.getMessage() for r in caplog.records]
    assert messages.count("test store unavailable: buffering prediction events") == 1
    full = "test store buffer full: dropping prediction events until it is back"
    assert messages.count(full) == 1
    assert messages.count("test store available again: writing the buffered events") == 1
    assert sorted(e for b in store.batches for e in b) == list(range(30))


def test_a_stop_with_the_store_down_is_quick_and_counts_what_was_lost() -> None:
    store, dropped = Store(), list[int]()
    writer = BatchingWriter("test store", store.deliver, (OSError,), capacity=100, batch=10,
                            probe=lambda: store.deliver([]), on_dropped=dropped.append)  # fmt: skip
    store.down.set()
    writer.start()
    assert wait_until(lambda: not writer.available)  # said before any event: the probe
    writer.put(list(range(25)))
    started = time.monotonic()
    writer.close(timeout=5.0)
    assert time.monotonic() - started < 3.0  # not the full timeout: the store is down
    assert sum(dropped) == writer.dropped == 25
    assert store.batches == []
