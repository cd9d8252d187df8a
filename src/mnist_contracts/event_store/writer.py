"""One writer thread per worker that delivers events in batches, for either store.

Requests add events to a bounded buffer and return; the thread gathers them for ``linger_s``
after the first (like Kafka's ``linger.ms``: one commit or one pipeline for many requests) and
hands each batch to the store's ``deliver``. While the store is down the thread retries with
exponential backoff (tenacity), the buffer holds up to ``capacity`` events, and beyond that new
events are dropped and counted. A change of the store's state is said once: one log line and
one ``on_available`` call, not one per request.

A batch whose delivery failed is delivered again, so a store that applied it but lost the reply
sees it twice: delivery is at least once, and readers deduplicate by event id.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import tenacity

log = logging.getLogger(__name__)

Item = TypeVar("Item")
LINGER_S = 0.005


def _nothing(_: object) -> None:
    return None


class BatchingWriter(Generic[Item]):
    """Deliver items to a store in batches from one thread, surviving the store's outages."""

    def __init__(
        self,
        name: str,
        deliver: Callable[[list[Item]], None],
        errors: tuple[type[Exception], ...],
        *,
        capacity: int,
        batch: int,
        linger_s: float = LINGER_S,
        probe: Callable[[], object] | None = None,
        finish: Callable[[], None] | None = None,
        on_delivered: Callable[[int], None] = _nothing,
        on_dropped: Callable[[int], None] = _nothing,
        on_available: Callable[[bool], None] = _nothing,
        where: str = "",
    ) -> None:
        """A writer; its thread starts with :meth:`start` or the first :meth:`put`.

        Args:
            name: What the log lines call the store ("prediction log", "event stream").
            deliver: Writes one batch; raises one of ``errors`` when the store is down.
            errors: The store's errors that mean "down, retry later".
            capacity: How many events may wait in memory; more are dropped and counted.
            batch: The most events one ``deliver`` call gets.
            linger_s: How long a batch gathers after its first event.
            probe: Opens (or pings) the store when the thread starts, so an outage shows
                before any request.
            finish: Called on the writer's thread when it ends (closes its connection).
            on_delivered: Called with the size of each delivered batch.
            on_dropped: Called with the count of events dropped.
            on_available: Called with the store's new state on each change.
            where: The store's address, for the log lines.
        """
        self.name, self.where = name, where
        self._deliver, self._errors, self._probe, self._finish = deliver, errors, probe, finish
        self.capacity, self.batch, self.linger_s = capacity, batch, linger_s
        self._on_delivered, self._on_dropped = on_delivered, on_dropped
        self._on_available = on_available
        self._buffer: collections.deque[Item] = collections.deque()
        self._cond = threading.Condition()
        self._inflight = 0
        self._stopping = False
        self._stop = threading.Event()  # ends a retry's wait at once
        self._thread: threading.Thread | None = None
        self.available = True
        self._down_since: float | None = None
        self._dropped_in_outage = 0
        self.delivered = self.dropped = 0

    def start(self) -> None:
        """Start the thread (once); it probes the store first."""
        if self._thread is None:
            with self._cond:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name=self.name.replace(" ", "-"), daemon=True
                    )
                    self._thread.start()

    def put(self, items: list[Item]) -> None:
        """Buffer one request's events (no I/O here); drop and count what does not fit."""
        self.start()
        with self._cond:
            room = max(self.capacity - len(self._buffer) - self._inflight, 0)
            kept = items[:room]
            self._buffer.extend(kept)
            # Wake the thread for the first event of a batch or a full one, not for each
            # request: it lingers for the rest, so a busy worker sends few batches.
            if kept and (len(self._buffer) == len(kept) or len(self._buffer) >= self.batch):
                self._cond.notify()
        if len(items) > room:
            self._drop(len(items) - room, "dropping prediction events until it is back")

    def set_available(self, up: bool, error: BaseException | None = None) -> None:
        """Record a change of the store's state: one log line and one callback per change."""
        with self._cond:
            if up == self.available:
                return
            self.available = up
            pending = len(self._buffer) + self._inflight
        self._on_available(up)
        fields: dict[str, object] = {"store": self.where}
        if up:
            fields |= {"pending": pending, "dropped": self._dropped_in_outage}
            if self._down_since is not None:
                fields["down_s"] = round(time.monotonic() - self._down_since, 1)
            self._down_since, self._dropped_in_outage = None, 0
            log.warning(f"{self.name} available again: writing the buffered events",
                        extra={"fields": fields})  # fmt: skip
        else:
            self._down_since = time.monotonic()
            log.error(f"{self.name} unavailable: buffering prediction events",
                      extra={"fields": fields | {"error": str(error)}})  # fmt: skip

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything buffered so far is delivered; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._buffer or self._inflight:
                left = deadline - time.monotonic()
                if left <= 0 or self._thread is None:
                    return False
                self._cond.wait(left)
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is buffered (waiting up to ``timeout``), then stop the thread.

        With the store down the wait is cut to a second: what could not be delivered is
        counted as dropped and said in one line, and the worker exits in time.
        """
        if self._thread is None:
            return
        self.flush(timeout if self.available else min(timeout, 1.0))
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._stop.set()
        self._thread.join(5.0)
        self._thread = None
        with self._cond:
            lost = len(self._buffer) + self._inflight
            self._buffer.clear()
        if lost:
            self._drop(lost, "events not written at stop", stopping=True)

    def _drop(self, count: int, why: str, stopping: bool = False) -> None:
        with self._cond:
            first = self._dropped_in_outage == 0
            self.dropped += count
            self._dropped_in_outage += count
        self._on_dropped(count)
        fields = {"store": self.where, "capacity": self.capacity, "events": count}
        if stopping:
            log.error(f"{self.name}: {why}", extra={"fields": fields})
        elif first:
            log.warning(f"{self.name} buffer full: {why}", extra={"fields": fields})

    def _retrying(self) -> tenacity.Retrying:
        """Retry while the store is down: 0.2 s, 0.4 s, ... up to 5 s apart, until stopped."""

        def pause(seconds: float) -> None:
            self._stop.wait(seconds)  # a stop ends the wait at once

        def said_down(state: tenacity.RetryCallState) -> None:
            if state.outcome is not None:
                self.set_available(False, state.outcome.exception())

        return tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(self._errors),
            wait=tenacity.wait_exponential(multiplier=0.2, max=5.0),
            stop=lambda _: self._stop.is_set(),
            sleep=pause,
            before_sleep=said_down,
            reraise=True,
        )

    def _attempt(self, call: Callable[[], object]) -> bool:
        """Run ``call`` until it succeeds (True) or the writer is told to stop (False)."""
        try:
            for attempt in self._retrying():
                with attempt:
                    call()
        except self._errors as err:
            self.set_available(False, err)
            return False
        self.set_available(True)
        return True

    def _next_batch(self) -> list[Item]:
        """Wait for events, linger for more, and take one batch (empty: stop)."""
        with self._cond:
            while not self._buffer and not self._stopping:
                self._cond.wait()
            deadline = time.monotonic() + self.linger_s
            while len(self._buffer) < self.batch and not self._stopping:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            batch = [self._buffer.popleft() for _ in range(min(self.batch, len(self._buffer)))]
            self._inflight = len(batch)
            return batch

    def _run(self) -> None:
        try:
            if self._probe is not None and not self._attempt(self._probe):
                return
            while batch := self._next_batch():
                delivered = self._attempt(lambda: self._deliver(batch))
                with self._cond:
                    self._inflight = 0
                    if delivered:
                        self.delivered += len(batch)
                    else:
                        self._buffer.extendleft(reversed(batch))  # counted by close()
                    self._cond.notify_all()
                if not delivered:
                    return
                self._on_delivered(len(batch))
        finally:
            if self._finish is not None:
                self._finish()


class WriterSink:
    """What both stores' sinks share: their state, start and stop are their writer's."""

    writer: BatchingWriter[Any]

    @property
    def available(self) -> bool:
        """False while the store is down (said once per change of state)."""
        return self.writer.available

    def start(self) -> None:
        """Start the writer thread, which opens (or pings) the store now."""
        self.writer.start()

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is buffered (waiting up to ``timeout``), count the rest, then stop."""
        self.writer.close(timeout)
