"""Every answered prediction, recorded off the request's hot path for drift monitoring.

The table is the contract's (:mod:`mnist_contracts.prediction_log`), which the monitor reads.

Requests put a small tuple on a queue; one writer thread per worker batches them into SQLite
(WAL mode, so several workers can share the file). ``close()`` drains the queue, so a clean
shutdown loses nothing: logged rows == answered predictions.
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


class PredictionLog:
    """A per-process writer into the shared SQLite prediction log."""

    def __init__(self, path: Path) -> None:
        self.path = path
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
        """Queue one request's predictions (cheap: no I/O on the request thread)."""
        self._ensure_writer()
        self._queue.put((time.time(), version, classes, confidences, images.tobytes()))

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
            rows = [
                (ts, version, cls, conf, blob[i * IMAGE_BYTES : (i + 1) * IMAGE_BYTES], pid)
                for ts, version, classes, confs, blob in batch
                for i, (cls, conf) in enumerate(zip(classes, confs, strict=True))
            ]
            if rows:
                try:
                    with db:
                        db.executemany(INSERT, rows)
                    self.written += len(rows)
                except sqlite3.Error:
                    log.exception(
                        "prediction log write failed", extra={"fields": {"rows": len(rows)}}
                    )
        db.close()

    def close(self, timeout: float = 30.0) -> None:
        """Drain the queue and stop the writer (called when a worker exits)."""
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout)
            self._thread = None
