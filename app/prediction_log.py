"""Every answered prediction, recorded off the request's hot path for drift monitoring.

The table is the contract's (:mod:`mnist_contracts.prediction_log`), which the monitor reads.

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

import numpy as np
import numpy.typing as npt

from mnist_contracts.model import IMAGE_BYTES
from mnist_contracts.prediction_log import INSERT, connect

log = logging.getLogger(__name__)

_STOP = object()
_Batch = tuple[float, str, list[int], list[float], bytes]


def _rows(batch: list[_Batch], pid: int) -> list[tuple[object, ...]]:
    """One row per image of each queued request."""
    return [
        (ts, version, cls, conf, blob[i * IMAGE_BYTES : (i + 1) * IMAGE_BYTES], pid)
        for ts, version, classes, confs, blob in batch
        for i, (cls, conf) in enumerate(zip(classes, confs, strict=True))
    ]


class PredictionLog:
    """A per-process writer into the shared SQLite prediction log."""

    def __init__(self, path: Path, sync: bool = False) -> None:
        self.path, self.sync = path, sync
        self._local = threading.local()  # sync mode: one connection per request thread
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.written = 0

    def _ensure_writer(self) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._write_loop, name="prediction-log", daemon=True
                    )
                    self._thread.start()

    def record(
        self,
        version: str,
        classes: list[int],
        confidences: list[float],
        images: npt.NDArray[np.uint8],
    ) -> None:
        """Queue one request's predictions (cheap: no I/O on the request thread).

        In sync mode, commit them here instead: the answer leaves only once they are on disk.
        """
        item = (time.time(), version, classes, confidences, images.tobytes())
        if self.sync:
            db = getattr(self._local, "db", None)
            if db is None:
                db = self._local.db = connect(self.path)
            self._commit(db, _rows([item], os.getpid()))
            return
        self._ensure_writer()
        self._queue.put(item)

    def _commit(self, db: sqlite3.Connection, rows: list[tuple[object, ...]]) -> None:
        try:
            with db:
                db.executemany(INSERT, rows)
            self.written += len(rows)
        except sqlite3.Error:
            log.exception("prediction log write failed", extra={"fields": {"rows": len(rows)}})

    def _write_loop(self) -> None:
        db = connect(self.path)
        pid = os.getpid()
        stop = False
        while not stop:
            item = self._queue.get()
            batch: list[_Batch] = []
            while True:
                if item is _STOP:
                    stop = True
                else:
                    batch.append(item)  # type: ignore[arg-type]
                if stop or len(batch) >= 256:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            rows = _rows(batch, pid)
            if rows:
                self._commit(db, rows)
        db.close()

    def close(self, timeout: float = 30.0) -> None:
        """Drain the queue and stop the writer (called when a worker exits)."""
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout)
            self._thread = None
