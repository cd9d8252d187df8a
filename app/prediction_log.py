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

    def close(self, timeout: float = 30.0) -> None:
        """Deliver what is pending and stop."""
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

    def __init__(self, path: Path, sync: bool = False) -> None:
        self.path, self.sync = path, sync
        self._local = threading.local()  # one connection per request thread (sync, labels)
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._reported = False  # "log unavailable" is logged once, not on every retry
        self.written = 0

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
        if self.sync:
            self._commit(self._db(), _rows([item], os.getpid()))
            return ids
        self._ensure_writer()
        self._queue.put(item)
        return ids

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
        try:
            with db:
                db.executemany(INSERT, rows)
            self.written += len(rows)
        except sqlite3.Error:
            log.exception("prediction log write failed", extra={"fields": {"rows": len(rows)}})

    def _write_loop(self) -> None:
        db = None
        while db is None:  # an unwritable log is logged once and retried; requests go on
            try:
                db = connect(self.path)
            except sqlite3.Error as err:
                if not self._reported:
                    log.error("prediction log unavailable", extra={"fields": {"error": str(err)}})
                    self._reported = True
                time.sleep(1.0)
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
            if rows:
                self._commit(db, rows)
            for event in waiting:
                event.set()
        db.close()

    def close(self, timeout: float = 30.0) -> None:
        """Drain the queue and stop the writer (called when a worker exits)."""
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout)
            self._thread = None
