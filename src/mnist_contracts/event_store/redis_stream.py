"""The shared store: prediction events on a Redis stream, its layout, writer and reader.

With ``EVENTS_URL=redis://...`` every answered image becomes one entry of the stream
``{prefix}:predictions`` (the embedded SQLite log, :mod:`.sqlite`, is the default):

- fields ``id`` (the server's event id), ``ts``, ``v`` (model version), ``m`` (its variant:
  ``savedmodel``, ``tflite-float``, ``tflite-int8``), ``c`` (class), ``p`` (confidence),
  ``pid``, ``host``, and ``img`` (the 784 input bytes) on a share of the events;
- trimmed to about ``EVENTS_MAXLEN`` entries (``XADD MAXLEN ~``), so Redis memory is bounded:
  at 784 + ~150 bytes an entry, 100,000 entries are about 100 MB;
- the hash ``{prefix}:events:{hour}`` maps each event id of that hour (the id starts with its
  time) to the predicted class, for ``EVENTS_FEEDBACK_TTL_S`` seconds, so any replica can accept
  ``POST /feedback`` for it (one command per published batch, not one key per event);
  ``{prefix}:label:{id}`` makes a second label a conflict; labels are entries of
  ``{prefix}:feedback`` (fields ``id``, ``label``, ``ts``);
- ``{prefix}:shadow`` holds the candidate's answers (``mnist shadow``), and
  ``{prefix}:report`` the monitor's latest report, which every replica's gauges read.

Each worker publishes from its writer thread (:class:`RedisSink`) in pipelined batches; the
monitor, the shadow consumer and the shadow report read (:class:`RedisEvents`). Delivery is at
least once (a batch whose reply was lost is sent again), so readers deduplicate by event id.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import redis

from mnist_contracts.event_store.schema import (
    DEFAULT_FEEDBACK_TTL_S,
    DEFAULT_MAXLEN,
    DEFAULT_PREFIX,
    EventStoreError,
    LabelExistsError,
    LabelledEvent,
    LogError,
    UnknownEventError,
    Window,
    WindowRow,
    carries_image,
    event_hour,
    image_of,
    pick_version,
    split_request,
    to_window,
)
from mnist_contracts.event_store.writer import BatchingWriter, WriterSink, _nothing

BATCH = 500
Event = tuple[
    str, float, str, int, float, bytes | None, str
]  # id, ts, version, class, p, image, variant


@dataclass(frozen=True)
class Keys:
    """The Redis keys of one deployment (``prefix`` separates deployments on one server)."""

    prefix: str = DEFAULT_PREFIX

    @property
    def predictions(self) -> str:
        """The prediction stream."""
        return f"{self.prefix}:predictions"

    @property
    def feedback(self) -> str:
        """The stream of true labels."""
        return f"{self.prefix}:feedback"

    @property
    def shadow(self) -> str:
        """The candidate's answers on the same inputs (``mnist shadow``)."""
        return f"{self.prefix}:shadow"

    @property
    def report(self) -> str:
        """The latest monitor report (``drift.json``'s text), which every replica's gauges read."""
        return f"{self.prefix}:report"

    def events(self, hour: int) -> str:
        """The hash of one hour's events (field: event id, value: its predicted class)."""
        return f"{self.prefix}:events:{hour}"

    def label(self, event_id: str) -> str:
        """The key that says an event has its label."""
        return f"{self.prefix}:label:{event_id}"


def encode_event(
    event_id: str, ts: float, version: str, cls: int, conf: float, image: bytes | None, pid: int,
    host: str, variant: str = "savedmodel",
) -> list[Any]:  # fmt: skip
    """The stream fields of one event as ``XADD``'s flat field-value list.

    ``image`` None: this event does not carry its input. Flat, not a dict: the publisher sends
    it as it is, without rebuilding it per event on the thread that competes with requests.
    """
    fields: list[Any] = ["id", event_id, "ts", repr(ts), "v", version, "m", variant, "c", cls,
                         "p", repr(conf), "pid", pid, "host", host]  # fmt: skip
    if image is not None:
        fields += ("img", image)
    return fields


def ensure_group(client: redis.Redis, stream: str, name: str) -> None:
    """Create a consumer group reading ``stream`` from its start, unless it exists."""
    try:  # from the stream's start: the events already held are read too
        client.xgroup_create(stream, name, id="0", mkstream=True)
    except redis.ResponseError as err:
        if "BUSYGROUP" not in str(err):
            raise


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisEvents:
    """The Redis streams as an event source (and where the monitor publishes its report)."""

    def __init__(self, url: str, prefix: str = DEFAULT_PREFIX, batch: int = 1000) -> None:
        self.url, self.keys, self.batch = url, Keys(prefix), batch
        self.client: redis.Redis = redis.Redis.from_url(url, socket_timeout=30)

    def entries(self, stream: str) -> Iterator[dict[bytes, bytes]]:
        """Every entry of a stream, newest first, read in batches."""
        last = "+"
        try:
            while True:
                chunk = cast(
                    "list[tuple[bytes, dict[bytes, bytes]]]",
                    self.client.xrevrange(stream, max=last, min="-", count=self.batch),
                )
                for _, fields in chunk:
                    yield fields
                if len(chunk) < self.batch:
                    return
                last = "(" + _text(chunk[-1][0])
        except redis.RedisError as err:
            raise LogError(f"{self.url}: cannot read {stream} ({err})") from None

    def labels(self) -> dict[str, int]:
        """Every label still in the feedback stream (the first one of an id wins)."""
        found: dict[str, int] = {}
        for fields in self.entries(self.keys.feedback):
            found[_text(fields[b"id"])] = int(fields[b"label"])  # newest first: oldest wins
        return found

    def window(self, size: int, model_version: str | None = None) -> Window:
        """See :class:`~mnist_contracts.event_store.schema.EventSource`."""
        seen: set[str] = set()
        by_version: dict[str, list[WindowRow]] = {}
        order: list[str] = []
        for fields in self.entries(self.keys.predictions):
            event_id = _text(fields[b"id"])
            if event_id in seen:
                continue  # at-least-once delivery: a retried batch may repeat an event
            seen.add(event_id)
            version = _text(fields[b"v"])
            if version not in by_version:
                by_version[version] = []
                order.insert(0, version)  # newest first, so the last answered is order[-1]
            rows = by_version[version]
            if len(rows) < size:
                rows.append((event_id, float(fields[b"ts"]), int(fields[b"c"]),
                             float(fields[b"p"]), fields.get(b"img", b""),
                             _text(fields.get(b"m", b"savedmodel"))))  # fmt: skip
            if model_version is not None and len(by_version.get(model_version, [])) >= size:
                break
        version = pick_version(order, model_version, f"{self.url} {self.keys.predictions}")
        try:
            return to_window(version, by_version[version], self.labels())
        except LogError as err:
            raise LogError(f"{self.url}: {err}") from None

    def publish_report(self, text: str) -> None:
        """Make the monitor's report the one every replica's gauges show."""
        try:
            self.client.set(self.keys.report, text)
        except redis.RedisError as err:
            raise LogError(f"{self.url}: cannot write {self.keys.report} ({err})") from None

    def labelled(self) -> Iterator[LabelledEvent]:
        """See :class:`~mnist_contracts.event_store.schema.EventSource`."""
        labels = self.labels()
        seen: set[str] = set()
        for fields in self.entries(self.keys.predictions):
            event_id = _text(fields[b"id"])
            if event_id in labels and event_id not in seen:
                seen.add(event_id)
                yield LabelledEvent(event_id, _text(fields[b"v"]), int(fields[b"c"]),
                                    labels[event_id], image_of(fields.get(b"img")))  # fmt: skip


@dataclass(frozen=True)
class StreamConfig:
    """Where and how events are published (the ``EVENTS_*`` settings)."""

    url: str
    prefix: str = DEFAULT_PREFIX
    maxlen: int = DEFAULT_MAXLEN
    image_share: float = 1.0
    buffer: int = 10_000
    feedback_ttl_s: int = DEFAULT_FEEDBACK_TTL_S


class RedisSink(WriterSink):
    """A worker's publisher of prediction events to one Redis stream (an ``EventSink``)."""

    def __init__(
        self,
        config: StreamConfig,
        on_published: Callable[[int], None] = _nothing,
        on_dropped: Callable[[int], None] = _nothing,
        on_available: Callable[[bool], None] = _nothing,
    ) -> None:
        self.config, self.keys = config, Keys(config.prefix)
        self.client = redis.Redis.from_url(
            config.url, socket_timeout=2, socket_connect_timeout=2, health_check_interval=10
        )
        self._host = socket.gethostname()
        self.writer: BatchingWriter[Event] = BatchingWriter(
            "event stream", self._send, (redis.RedisError,), capacity=config.buffer,
            batch=BATCH, probe=self.client.ping, on_delivered=on_published,
            on_dropped=on_dropped, on_available=on_available, where=config.url,
        )  # fmt: skip

    def record(
        self,
        version: str,
        classes: list[int],
        confidences: list[float],
        images: npt.NDArray[np.uint8],
        variant: str = "savedmodel",
    ) -> list[str]:
        """Buffer one request's events (no I/O here); returns one event id per image."""
        ts, share = time.time(), self.config.image_share
        events: list[Event] = [
            (event_id, ts, version, cls, conf, image if carries_image(event_id, share) else None,
             variant)
            for event_id, cls, conf, image in split_request(classes, confidences, images)
        ]  # fmt: skip
        self.writer.put(events)
        return [e[0] for e in events]

    def _send(self, batch: list[Event]) -> None:
        # The raw commands, not redis-py's helpers: this thread holds the GIL that the request
        # threads need, so it does as little Python per event as it can.
        pipe = self.client.pipeline(transaction=False)
        command = cast("Callable[..., object]", pipe.execute_command)  # untyped in redis-py
        stream, maxlen, pid = self.keys.predictions, self.config.maxlen, os.getpid()
        hours: dict[int, list[str | int]] = {}
        for event_id, ts, version, cls, conf, image, variant in batch:
            fields = encode_event(event_id, ts, version, cls, conf, image, pid, self._host, variant)
            command("XADD", stream, "MAXLEN", "~", maxlen, "*", *fields)
            hours.setdefault(event_hour(event_id), []).extend((event_id, cls))
        for hour, mapping in hours.items():
            key = self.keys.events(hour)
            command("HSET", key, *mapping)
            command("EXPIRE", key, self.config.feedback_ttl_s + 3600, "NX")
        pipe.execute()

    def label(self, event_id: str, label: int) -> int:
        """Record a true label for an event any replica answered.

        Raises:
            UnknownEventError: If no live event has the id.
            LabelExistsError: If the event already has a label.
            EventStoreError: If Redis does not answer.
        """
        try:
            bucket = self.keys.events(event_hour(event_id))
            predicted = self.client.hget(bucket, event_id)
            if predicted is None and self.writer.flush(2.0):  # it may be in this worker's buffer
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
            raise EventStoreError(str(err)) from None
        return int(predicted)
