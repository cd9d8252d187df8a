"""Every answered prediction, recorded off the request's hot path: the embedded SQLite sink.

The tables are the contract's (:mod:`mnist_contracts.prediction_log`), which the monitor reads.
With ``EVENTS_URL`` set, :mod:`app.events` publishes the same events to Redis instead.

Requests put a small tuple on a queue; one writer thread per worker batches them into SQLite
(WAL mode, so several workers can share the file). ``close()`` drains the queue, so a clean
shutdown loses nothing: logged rows == answered predictions.

A worker killed outright (SIGKILL, the OOM killer) loses what it answered but had not yet
committed: milliseconds of traffic (``make bench-durability`` measures it). With
``PREDICTION_LOG_SYNC=true`` each request commits its rows before the answer is sent, so an
answered prediction is always logged, at the cost of one SQLite commit per request.
"""

from __future__ import annotations

import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from mnist_contracts.events import new_event_id
from mnist_contracts.model import IMAGE_BYTES
from mnist_contracts.prediction_log import INSERT, UnknownEventError, add_label, connect

log = logging.getLogger(__name__)
LINGER_S = 0.005  # a batch gathers for this long after its first request: one commit for many

_STOP = object()
_Batch = tuple[float, str, str, list[str], list[int], list[float], bytes]


class EventStoreError(Exception):
    """The event store did not answer a request that needs it now (a label): retry later."""


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
        """Record a true label; returns the predicted class (see :func:`add_label`)."""
        ...

    def start(self) -> None:
        """Start the writer: it opens the store now, so an outage shows before any request."""
        ...

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is pending (waiting up to ``timeout``), count the rest, and stop."""
        ...


def _rows(batch: list[_Batch], pid: int) -> list[tuple[object, ...]]:
    """One row per image of each queued request."""
    return [
        (
            ts,
            version,
            cls,
            conf,
            blob[i * IMAGE_BYTES : (i + 1) * IMAGE_BYTES],
            pid,
            event_id,
            variant,
        )
        for ts, version, variant, ids, classes, confs, blob in batch
        for i, (event_id, cls, conf) in enumerate(zip(ids, classes, confs, strict=True))
    ]


class PredictionLog:
    """A per-process writer into the shared SQLite prediction log."""

    def __init__(
        self,
        path: Path,
        sync: bool = False,
        buffer: int = 10_000,
        on_dropped: Callable[[int], None] = lambda n: None,
        on_available: Callable[[bool], None] = lambda up: None,
    ) -> None:
        self.path, self.sync, self.buffer = path, sync, buffer
        self._on_dropped, self._on_available = on_dropped, on_available
        self._local = threading.local()  # one connection per request thread (sync, labels)
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._pending = 0  # requests queued and not yet written: bounded by ``buffer`` events
        self.available = True  # False while the log cannot be opened (said once per change)
        self._said_drop = False  # "dropping" is said once per outage
        self.written = self.dropped = 0

    def start(self) -> None:
        """Start the writer thread, which opens the log (see :class:`EventSink`)."""
        self._ensure_writer()

    def _ensure_writer(self) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._write_loop, name="prediction-log", daemon=True
                    )
                    self._thread.start()

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = connect(self.path)
        return db

    def record(
        self,
        version: str,
        classes: list[int],
        confidences: list[float],
        images: npt.NDArray[np.uint8],
        variant: str = "savedmodel",
    ) -> list[str]:
        """Queue one request's predictions (cheap: no I/O on the request thread).

        In sync mode, commit them here instead: the answer leaves only once they are on disk.

        Returns:
            The event id of each image.
        """
        ids = [new_event_id() for _ in classes]
        item = (time.time(), version, variant, ids, classes, confidences, images.tobytes())
        if self.sync and self.available:
            try:
                self._commit(self._db(), _rows([item], os.getpid()))
                return ids
            except (OSError, sqlite3.Error) as err:
                self._set_available(False, err)  # then queued: written when the log is back
        self._ensure_writer()
        with self._lock:
            if self._pending + len(ids) > self.buffer:
                self._drop(len(ids))
                return ids
            self._pending += len(ids)
        self._queue.put(item)
        return ids

    def _drop(self, count: int) -> None:
        first, self._said_drop = not self._said_drop, True
        self.dropped += count
        self._on_dropped(count)
        if first:
            log.warning(
                "prediction log buffer full: dropping prediction events until the log is back",
                extra={"fields": {"buffer": self.buffer, "dropped": count}},
            )

    def _set_available(self, up: bool, error: BaseException | None = None) -> None:
        """Record a change of the log's state: one log line and one gauge update per change."""
        if up == self.available:
            return
        self.available = up
        self._on_available(up)
        if up:
            self._said_drop = False
            fields: dict[str, object] = {"path": str(self.path), "pending": self._pending}
            log.warning("prediction log available again: writing the buffered events",
                        extra={"fields": fields})  # fmt: skip
        else:
            fields = {"path": str(self.path), "error": str(error)}
            log.error("prediction log unavailable: buffering prediction events",
                      extra={"fields": fields})  # fmt: skip

    def label(self, event_id: str, label: int) -> int:
        """Record the true label of an answered image (see :func:`add_label`).

        An event this worker answered a moment ago may still be queued: the queue is flushed
        before an id is called unknown.
        """
        try:
            try:
                return add_label(self._db(), event_id, label, time.time())
            except UnknownEventError:
                self.flush()
                return add_label(self._db(), event_id, label, time.time())
        except sqlite3.OperationalError as err:  # locked past the busy timeout, disk full
            raise EventStoreError(str(err)) from None

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until everything queued so far is committed."""
        if self._thread is None:
            return
        done = threading.Event()
        self._queue.put(done)
        done.wait(timeout)

    def _commit(self, db: sqlite3.Connection, rows: list[tuple[object, ...]]) -> None:
        with db:
            db.executemany(INSERT, rows)
        self.written += len(rows)

    def _open(self) -> sqlite3.Connection | None:
        """The writer's connection; None (retrying each second) until the log can be opened.

        Gives up when the writer is told to stop, so a worker whose log is down still exits.
        """
        while not self._stopping.is_set():
            try:
                db = connect(self.path, timeout=5.0)
            except (OSError, sqlite3.Error) as err:
                self._set_available(False, err)
                self._stopping.wait(1.0)
                continue
            self._set_available(True)
            return db
        return None

    def _write_loop(self) -> None:
        db = self._open()
        if db is None:
            return
        # The queue in memory is what a SIGKILL can lose anyway; in WAL mode NORMAL loses nothing
        # more on a process crash (only on power loss), and spares an fsync per commit.
        db.execute("PRAGMA synchronous=NORMAL")
        pid = os.getpid()
        stop = False
        while not stop:
            item = self._queue.get()
            batch: list[_Batch] = []
            waiting: list[threading.Event] = []
            deadline = time.monotonic() + LINGER_S
            while True:
                if item is _STOP:
                    stop = True
                elif isinstance(item, threading.Event):
                    waiting.append(item)
                else:
                    batch.append(item)  # type: ignore[arg-type]
                if stop or waiting or len(batch) >= 256:
                    break
                remaining = deadline - time.monotonic()
                try:
                    item = (
                        self._queue.get(timeout=remaining)
                        if remaining > 0
                        else (self._queue.get_nowait())
                    )
                except queue.Empty:
                    break
            rows = _rows(batch, pid)
            while rows:
                try:
                    self._commit(db, rows)
                    break
                except sqlite3.Error as err:  # disk full, locked past the busy timeout
                    self._set_available(False, err)
                    if self._stopping.wait(1.0):
                        break  # counted as not written by close()
            else:
                self._set_available(True)
            with self._lock:
                self._pending -= len(rows) if self.available else 0
            for event in waiting:
                event.set()
        db.close()

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued (waiting up to ``timeout``), then stop the writer.

        With the log down the wait is cut short: what could not be written is counted as
        dropped and said in one line, and the worker exits in time.
        """
        if self._thread is None:
            return
        self._queue.put(_STOP)
        self._thread.join(timeout if self.available else min(timeout, 1.0))
        self._stopping.set()
        self._thread.join(2.0)
        self._thread = None
        with self._lock:
            lost, self._pending = self._pending, 0
        if lost:
            self.dropped += lost
            self._on_dropped(lost)
            log.error("prediction log: events not written at stop",
                      extra={"fields": {"path": str(self.path), "events": lost}})  # fmt: skip
