"""Prediction events to a Redis stream, published off the hot path (``EVENTS_URL``).

The stream's layout is the contract's (:mod:`mnist_contracts.events`). A request appends its
events to a bounded in-memory buffer and returns; one publisher thread per worker sends them in
pipelined batches. When Redis is unreachable the buffer holds up to ``EVENTS_BUFFER`` events;
beyond that new events are dropped, counted (``mnist_events_dropped_total``) and logged, and the
requests are answered all the same. Publishing resumes by itself when Redis comes back.

A batch whose reply was lost is sent again, so an event can reach the stream twice: delivery is
at least once, and readers deduplicate by event id.
"""

from __future__ import annotations

import collections
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import redis

from app.prediction_log import EventStoreError
from mnist_contracts.events import Keys, carries_image, encode_event, event_hour, new_event_id
from mnist_contracts.model import IMAGE_BYTES
from mnist_contracts.prediction_log import LabelExistsError, UnknownEventError

log = logging.getLogger(__name__)

_Event = tuple[str, float, str, int, float, bytes | None, str]  # ..., image, variant
BATCH = 500
LINGER_S = 0.005  # how long a batch may gather after its first event (like Kafka's linger.ms)


class BrokerError(EventStoreError):
    """Redis did not answer a request that needs it now (a label)."""


@dataclass(frozen=True)
class StreamConfig:
    """Where and how events are published (the ``EVENTS_*`` settings)."""

    url: str
    prefix: str
    maxlen: int
    image_share: float
    buffer: int
    feedback_ttl_s: int


class EventPublisher:
    """A per-process publisher of prediction events to one Redis stream."""

    def __init__(
        self,
        config: StreamConfig,
        on_published: Callable[[int], None] = lambda n: None,
        on_dropped: Callable[[int], None] = lambda n: None,
        on_available: Callable[[bool], None] = lambda up: None,
    ) -> None:
        self.config, self.keys = config, Keys(config.prefix)
        self.client = redis.Redis.from_url(
            config.url, socket_timeout=2, socket_connect_timeout=2, health_check_interval=10
        )
        self._on_published, self._on_dropped = on_published, on_dropped
        self._on_available = on_available
        self._buffer: collections.deque[_Event] = collections.deque()
        self._cond = threading.Condition()
        self._inflight = 0
        self._stopping = False
        self._stop = threading.Event()  # ends a retry's wait at once
        self._thread: threading.Thread | None = None
        self._pid, self._host = os.getpid(), socket.gethostname()
        self.published = self.dropped = 0
        self._down_since: float | None = None
        self._dropped_in_outage = 0

    def start(self) -> None:
        """Start the publisher thread (it sends when events come; see ``EventSink``)."""
        self._ensure_thread()

    def _ensure_thread(self) -> None:
        if self._thread is None:
            with self._cond:
                if self._thread is None:
                    self._pid = os.getpid()  # after Gunicorn's fork
                    self._thread = threading.Thread(
                        target=self._loop, name="event-publisher", daemon=True
                    )
                    self._thread.start()

    def record(
        self,
        version: str,
        classes: list[int],
        confidences: list[float],
        images: npt.NDArray[np.uint8],
        variant: str = "savedmodel",
    ) -> list[str]:
        """Buffer one request's events (no I/O here); returns one event id per image."""
        self._ensure_thread()
        ts, blob, share = time.time(), images.tobytes(), self.config.image_share
        events: list[_Event] = []
        for i, (cls, conf) in enumerate(zip(classes, confidences, strict=True)):
            event_id = new_event_id()
            image = blob[i * IMAGE_BYTES : (i + 1) * IMAGE_BYTES]
            keep = carries_image(event_id, share)
            events.append((event_id, ts, version, cls, conf, image if keep else None, variant))
        with self._cond:
            room = max(self.config.buffer - len(self._buffer) - self._inflight, 0)
            self._buffer.extend(events[:room])
            # Wake the publisher for the first event of a batch or a full one, not for each
            # request: it lingers for the rest (LINGER_S), so a busy worker sends few batches.
            if len(self._buffer) == len(events[:room]) or len(self._buffer) >= BATCH:
                self._cond.notify()
        if len(events) > room:
            self._drop(len(events) - room)
        return [e[0] for e in events]

    def _drop(self, count: int) -> None:
        with self._cond:
            first = self._dropped_in_outage == 0
            self.dropped += count
            self._dropped_in_outage += count
        self._on_dropped(count)
        if first:
            log.warning(
                "event buffer full: dropping prediction events until the broker is back",
                extra={"fields": {"buffer": self.config.buffer, "dropped": count}},
            )

    def _send(self, batch: list[_Event]) -> None:
        # The raw commands, not redis-py's helpers: this loop holds the GIL that the request
        # threads need, so it does as little Python per event as it can.
        pipe = self.client.pipeline(transaction=False)
        command = cast("Callable[..., object]", pipe.execute_command)  # untyped in redis-py
        stream, maxlen = self.keys.predictions, self.config.maxlen
        hours: dict[int, list[str | int]] = {}
        for event_id, ts, version, cls, conf, image, variant in batch:
            fields = encode_event(
                event_id, ts, version, cls, conf, image, self._pid, self._host, variant
            )
            command("XADD", stream, "MAXLEN", "~", maxlen, "*", *fields)
            hours.setdefault(event_hour(event_id), []).extend((event_id, cls))
        for hour, mapping in hours.items():
            key = self.keys.events(hour)
            command("HSET", key, *mapping)
            command("EXPIRE", key, self.config.feedback_ttl_s + 3600, "NX")
        pipe.execute()

    def _loop(self) -> None:
        backoff = 0.2
        while True:
            with self._cond:
                while not self._buffer and not self._stopping:
                    self._cond.wait()
                if not self._buffer:
                    return
                deadline = time.monotonic() + LINGER_S
                while len(self._buffer) < BATCH and not self._stopping:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                batch = [self._buffer.popleft() for _ in range(min(BATCH, len(self._buffer)))]
                self._inflight = len(batch)
            try:
                self._send(batch)
            except redis.RedisError as err:
                with self._cond:
                    self._buffer.extendleft(reversed(batch))
                    self._inflight = 0
                    stopping = self._stopping
                if self._down_since is None:
                    self._down_since = time.monotonic()
                    self._on_available(False)
                    log.warning(
                        "event broker unreachable: buffering prediction events",
                        extra={"fields": {"error": str(err), "buffer": self.config.buffer}},
                    )
                if stopping or self._stop.wait(backoff):
                    return
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.2
            with self._cond:
                self._inflight = 0
                self.published += len(batch)
                self._cond.notify_all()
            self._on_published(len(batch))
            if self._down_since is not None:
                log.warning(
                    "event broker reachable again: publishing resumed",
                    extra={"fields": {
                        "down_s": round(time.monotonic() - self._down_since, 1),
                        "dropped": self._dropped_in_outage,
                    }},
                )  # fmt: skip
                self._down_since, self._dropped_in_outage = None, 0
                self._on_available(True)

    def flush(self, timeout: float = 2.0) -> bool:
        """Wait until everything buffered so far is published; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._buffer or self._inflight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def label(self, event_id: str, label: int) -> int:
        """Record a true label for an event any replica answered.

        Raises:
            UnknownEventError: If no live event has the id.
            LabelExistsError: If the event already has a label.
            BrokerError: If Redis does not answer.
        """
        try:
            bucket = self.keys.events(event_hour(event_id))
            predicted = self.client.hget(bucket, event_id)
            if predicted is None and self.flush():  # it may still be in this worker's buffer
                predicted = self.client.hget(bucket, event_id)
            if predicted is None:
                raise UnknownEventError(event_id)
            if not self.client.set(
                self.keys.label(event_id), label, nx=True, ex=self.config.feedback_ttl_s
            ):
                raise LabelExistsError(event_id)
            fields: dict[Any, Any] = {"id": event_id, "label": label, "ts": repr(time.time())}
            self.client.xadd(self.keys.feedback, fields, maxlen=self.config.maxlen)
        except redis.RedisError as err:
            raise BrokerError(str(err)) from None
        return int(predicted)

    @property
    def available(self) -> bool:
        """False while Redis is unreachable (events are buffered, then dropped and counted)."""
        return self._down_since is None

    def close(self, timeout: float = 5.0) -> None:
        """Publish what is buffered (waiting up to ``timeout``), count the rest, then stop."""
        if self._thread is None:
            return
        # With Redis down, waiting longer would only delay the stop (a kill after the grace).
        published = self.flush(timeout if self.available else min(timeout, 1.0))
        with self._cond:
            self._stopping = True
            left = len(self._buffer)
            self._cond.notify_all()
        self._stop.set()
        self._thread.join(5)
        self._thread = None
        if not published and left:
            self._drop(left)
