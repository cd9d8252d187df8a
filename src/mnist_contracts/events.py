"""Prediction events on a Redis stream: the layout the service writes and the monitor reads.

With ``EVENTS_URL=redis://...`` every answered image becomes one entry of the stream
``{prefix}:predictions`` (the embedded SQLite log, :mod:`.prediction_log`, is the default):

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

Delivery is at least once (a publisher retries a batch whose reply it lost), so readers
deduplicate by event id. :class:`EventSource` is the one reading interface over both stores.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

import numpy as np
import numpy.typing as npt

from mnist_contracts.model import IMAGE_BYTES, IMAGE_SHAPE
from mnist_contracts.prediction_log import LogError, Window, pick_version, read_window, to_window

if TYPE_CHECKING:
    import redis

DEFAULT_PREFIX = "mnist"
DEFAULT_MAXLEN = 100_000
DEFAULT_FEEDBACK_TTL_S = 7 * 24 * 3600


def new_event_id() -> str:
    """A server-generated event id (never the client's request id).

    32 hex digits, time first (milliseconds, then 80 random bits, like a UUIDv7): ids sort by
    time, and the id alone names the hour bucket that says the event exists.
    """
    return f"{time.time_ns() // 1_000_000:012x}{random_hex(10)}"


class _Entropy(threading.local):
    """Bytes of ``os.urandom`` drawn 4 KiB at a time: one system call per ~400 ids, not per id.

    Per thread, and tied to the process that drew it: a forked child never reuses its parent's
    bytes (two workers would make the same ids).
    """

    def __init__(self) -> None:
        self.pid, self.pool, self.at = -1, b"", 0


_ENTROPY = _Entropy()
_POOL_BYTES = 4000


def random_hex(nbytes: int) -> str:
    """``nbytes`` bytes from the operating system's CSPRNG as hex, drawn from a per-thread pool.

    ``secrets.token_hex`` makes one system call per id, a tenth of a single-image request's
    time in the profile (``make bench-serving``); the pool makes one per ~400 ids.
    """
    entropy = _ENTROPY
    if entropy.pid != os.getpid() or entropy.at + nbytes > len(entropy.pool):
        entropy.pid, entropy.pool, entropy.at = os.getpid(), os.urandom(_POOL_BYTES), 0
    entropy.at += nbytes
    return entropy.pool[entropy.at - nbytes : entropy.at].hex()


def event_hour(event_id: str) -> int:
    """The hour (since the epoch) an event id was made in; -1 for an id of another shape."""
    try:
        return int(event_id[:12], 16) // 3_600_000
    except ValueError:
        return -1


def carries_image(event_id: str, share: float) -> bool:
    """Whether this event carries its input: a stable draw from the id, so replays agree."""
    if share >= 1.0:
        return True
    draw = int.from_bytes(hashlib.blake2b(event_id.encode(), digest_size=4).digest(), "big")
    return draw / 2**32 < share


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


@dataclass(frozen=True)
class LabelledEvent:
    """One answered image whose true label came back."""

    event_id: str
    model_version: str
    predicted_class: int
    label: int
    image: npt.NDArray[np.uint8] | None


class EventSource(Protocol):
    """Where predictions and labels are read from: the embedded log or the stream."""

    def window(self, size: int, model_version: str | None = None) -> Window:
        """The latest ``size`` predictions of one model version (deduplicated), newest first."""
        ...

    def labelled(self) -> Iterator[LabelledEvent]:
        """Every labelled event still held, once each."""
        ...


class SqliteEvents:
    """The embedded prediction log as an :class:`EventSource`."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def window(self, size: int, model_version: str | None = None) -> Window:
        """See :class:`EventSource`."""
        return read_window(self.path, size, model_version)

    def labelled(self) -> Iterator[LabelledEvent]:
        """See :class:`EventSource`."""
        import sqlite3

        if not self.path.is_file():
            raise LogError(f"{self.path}: no prediction log")
        try:
            with sqlite3.connect(f"file:{self.path}?mode=ro", uri=True) as db:
                rows = db.execute(
                    "SELECT p.event_id, p.model_version, p.predicted_class, l.label, p.image"
                    " FROM labels l JOIN predictions p ON p.event_id = l.event_id ORDER BY p.id"
                ).fetchall()
        except sqlite3.DatabaseError as err:
            raise LogError(f"{self.path}: not a readable prediction log ({err})") from None
        for event_id, version, cls, label, image in rows:
            yield LabelledEvent(event_id, version, int(cls), int(label), _image(image))


def _image(blob: bytes | None) -> npt.NDArray[np.uint8] | None:
    if not blob or len(blob) != IMAGE_BYTES:
        return None
    return np.frombuffer(blob, np.uint8).reshape(IMAGE_SHAPE)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisEvents:
    """The Redis streams as an :class:`EventSource`."""

    def __init__(self, url: str, prefix: str = DEFAULT_PREFIX, batch: int = 1000) -> None:
        import redis

        self.url, self.keys, self.batch = url, Keys(prefix), batch
        self.client: redis.Redis = redis.Redis.from_url(url, socket_timeout=30)

    def entries(self, stream: str) -> Iterator[dict[bytes, bytes]]:
        """Every entry of a stream, newest first, read in batches."""
        import redis

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
        """See :class:`EventSource`."""
        seen: set[str] = set()
        by_version: dict[str, list[tuple[str, float, int, float, bytes, str]]] = {}
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
        import redis

        try:
            self.client.set(self.keys.report, text)
        except redis.RedisError as err:
            raise LogError(f"{self.url}: cannot write {self.keys.report} ({err})") from None

    def labelled(self) -> Iterator[LabelledEvent]:
        """See :class:`EventSource`."""
        labels = self.labels()
        seen: set[str] = set()
        for fields in self.entries(self.keys.predictions):
            event_id = _text(fields[b"id"])
            if event_id in labels and event_id not in seen:
                seen.add(event_id)
                yield LabelledEvent(event_id, _text(fields[b"v"]), int(fields[b"c"]),
                                    labels[event_id], _image(fields.get(b"img")))  # fmt: skip


def open_events(where: str | Path, prefix: str = DEFAULT_PREFIX) -> EventSource:
    """The event source ``where`` names: a ``redis://`` URL, else the SQLite log's path."""
    text = str(where)
    if text.startswith(("redis://", "rediss://", "unix://")):
        return RedisEvents(text, prefix)
    return SqliteEvents(Path(text))


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
