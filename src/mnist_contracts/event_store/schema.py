"""What an event is, whichever store holds it: ids, the window read back, errors, interfaces.

An event is one answered image: the server's event id, its time, the model version (the
identity digest) and the runtime that answered (``variant``), the class and its confidence,
and the 784 input bytes (on all events in SQLite, on a share of them in Redis). A true label
sent to ``POST /feedback`` is joined to its event by id.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

from mnist_contracts.model import IMAGE_BYTES, IMAGE_SHAPE

DEFAULT_PREFIX = "mnist"
DEFAULT_MAXLEN = 100_000
DEFAULT_FEEDBACK_TTL_S = 7 * 24 * 3600
STREAM_SCHEMES = ("redis://", "rediss://", "unix://")


def is_stream_url(where: object) -> bool:
    """Whether ``where`` names the Redis event stream (else it is the SQLite log's path)."""
    return str(where).startswith(STREAM_SCHEMES)


class LogError(Exception):
    """The store is missing, unreadable, empty, or has no events of the model asked for."""


class UnknownEventError(LogError):
    """No prediction has this event id."""


class LabelExistsError(LogError):
    """The event already has a true label."""


class EventStoreError(Exception):
    """The event store did not answer a request that needs it now (a label): retry later."""


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


def split_request(
    classes: list[int], confidences: list[float], images: npt.NDArray[np.uint8]
) -> list[tuple[str, int, float, bytes]]:
    """One ``(new event id, class, confidence, input bytes)`` per image of an answered request."""
    blob = images.tobytes()
    return [
        (new_event_id(), cls, conf, blob[i * IMAGE_BYTES : (i + 1) * IMAGE_BYTES])
        for i, (cls, conf) in enumerate(zip(classes, confidences, strict=True))
    ]


def image_of(blob: bytes | None) -> npt.NDArray[np.uint8] | None:
    """One event's input as a 28x28 array; None when the event does not carry it."""
    if not blob or len(blob) != IMAGE_BYTES:
        return None
    return np.frombuffer(blob, np.uint8).reshape(IMAGE_SHAPE)


@dataclass(frozen=True)
class Window:
    """The most recent predictions of one model, newest first.

    ``images`` holds the inputs of the events that carried one (``has_image``); the stream may
    carry only a share of them. ``labels`` maps the window's labelled event ids to true labels;
    ``variants`` counts the events each runtime of the model answered (``savedmodel``,
    ``tflite-float``, ``tflite-int8``), whose outputs differ slightly.
    """

    model_version: str
    event_ids: list[str]
    ts: npt.NDArray[np.float64]
    predicted_class: npt.NDArray[np.int64]
    confidence: npt.NDArray[np.float64]
    has_image: npt.NDArray[np.bool_]
    images: npt.NDArray[np.uint8]
    labels: dict[str, int] = field(default_factory=dict)
    variants: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        """How many predictions the window holds."""
        return len(self.event_ids)


WindowRow = tuple[str, float, int, float, bytes, str]  # id, ts, class, confidence, image, variant


def to_window(version: str, rows: list[WindowRow], labels: dict[str, int]) -> Window:
    """A window from ``(event_id, ts, class, confidence, image or b"", variant)`` rows.

    The rows come newest first.

    Raises:
        LogError: If an image is neither absent nor 28x28 bytes.
    """
    if any(len(r[4]) not in (0, IMAGE_BYTES) for r in rows):
        raise LogError("corrupt events (images are not 28x28 bytes)")
    has_image = np.array([len(r[4]) == IMAGE_BYTES for r in rows], np.bool_)
    blob = b"".join(r[4] for r in rows)
    ids = [r[0] for r in rows]
    return Window(
        version,
        ids,
        np.array([r[1] for r in rows], np.float64),
        np.array([r[2] for r in rows], np.int64),
        np.array([r[3] for r in rows], np.float64),
        has_image,
        np.frombuffer(blob, np.uint8).reshape(-1, *IMAGE_SHAPE),
        {i: labels[i] for i in ids if i in labels},
        dict(Counter(r[5] for r in rows)),
    )


def pick_version(versions: list[str], model_version: str | None, where: str) -> str:
    """The version asked for, or the one that answered last; a clear error if it is absent."""
    if not versions:
        raise LogError(f"{where}: no predictions yet")
    version = model_version or versions[-1]
    if version not in versions:
        raise LogError(
            f"{where}: no predictions of model {version} (it has {', '.join(versions)});"
            " regenerate the reference for the served model or pass --model-version"
        )
    return version


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


class EventSink(Protocol):
    """Where a worker's prediction events and labels go: the SQLite log or a Redis stream."""

    @property
    def available(self) -> bool:
        """False while the store is down: the service answers all the same and buffers."""
        ...

    def record(
        self, version: str, classes: list[int], confidences: list[float],
        images: npt.NDArray[np.uint8], variant: str = "savedmodel",
    ) -> list[str]:  # fmt: skip
        """Record one request's predictions off the hot path; returns one event id per image.

        ``version`` is the model's identity digest, ``variant`` the runtime that answered.
        """
        ...

    def label(self, event_id: str, label: int) -> int:
        """Record a true label; returns the predicted class.

        Raises:
            UnknownEventError: If no prediction has the id.
            LabelExistsError: If the event already has a label.
            EventStoreError: If the store does not answer.
        """
        ...

    def start(self) -> None:
        """Start the writer: it opens the store now, so an outage shows before any request."""
        ...

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is pending (waiting up to ``timeout``), count the rest, and stop."""
        ...
