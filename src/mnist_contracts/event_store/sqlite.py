"""The embedded store: one SQLite file (the prediction log), its schema, writer and reader.

One row per answered image, keyed by the server's event id, and one row per true label sent to
``POST /feedback``. Each worker writes it in WAL mode from its own writer thread
(:class:`SqliteSink`); the monitor and the shadow replay open it read-only
(:class:`SqliteEvents`).

``close()`` delivers what is queued, so a clean shutdown loses nothing: logged rows ==
answered predictions. A worker killed outright (SIGKILL, the OOM killer) loses what it answered
but had not yet committed: milliseconds of traffic (``make bench-durability`` measures it). With
``PREDICTION_LOG_SYNC=true`` each request commits its rows before the answer is sent, so an
answered prediction is always logged, at the cost of one SQLite commit per request.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import tenacity

from mnist_contracts.event_store.schema import (
    EventStoreError,
    LabelExistsError,
    LabelledEvent,
    LogError,
    UnknownEventError,
    Window,
    image_of,
    pick_version,
    split_request,
    to_window,
)
from mnist_contracts.event_store.writer import BatchingWriter, WriterSink, _nothing
from mnist_contracts.model import IMAGE_BYTES

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS predictions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,              -- unix time of the answer
    model_version TEXT NOT NULL,
    predicted_class INTEGER NOT NULL,
    confidence REAL NOT NULL,
    image BLOB NOT NULL,           -- {IMAGE_BYTES} bytes: the uint8 28x28 input, row-major
    worker_pid INTEGER NOT NULL,
    event_id TEXT,                 -- the server's id, returned to the client (NULL: older rows)
    variant TEXT NOT NULL DEFAULT 'savedmodel'  -- which runtime of the model answered
);
CREATE TABLE IF NOT EXISTS labels (
    event_id TEXT PRIMARY KEY,     -- one true label per answered image
    label INTEGER NOT NULL,
    ts REAL NOT NULL
);
"""
INDEX = "CREATE UNIQUE INDEX IF NOT EXISTS predictions_event_id ON predictions (event_id)"
INSERT = (
    "INSERT OR IGNORE INTO predictions"
    " (ts, model_version, predicted_class, confidence, image, worker_pid, event_id, variant)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)

Row = tuple[float, str, int, float, bytes, int, str, str]

_WINDOW = (
    "SELECT {}, ts, predicted_class, confidence, image, {} FROM predictions"
    " WHERE model_version = ? ORDER BY id DESC LIMIT ?"
)
WINDOW_LABELS = (
    "SELECT event_id, label FROM labels WHERE event_id IN"
    " (SELECT event_id FROM predictions WHERE model_version = ? ORDER BY id DESC LIMIT ?)"
)
BATCH = 256


def window_query(columns: set[str]) -> str:
    """The window's SELECT for a log with these ``predictions`` columns (older logs lack some)."""
    event_id = "coalesce(event_id, 'row-' || id)" if "event_id" in columns else "'row-' || id"
    variant = "variant" if "variant" in columns else "'savedmodel'"
    return _WINDOW.format(event_id, variant)


def _open(path: Path, timeout: float) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=timeout)
    try:
        if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            db.execute("PRAGMA journal_mode=WAL")
        with db:
            db.executescript(SCHEMA)
            columns = {name for _, name, *_ in db.execute("PRAGMA table_info(predictions)")}
            if "event_id" not in columns:  # a log written before event ids existed
                db.execute("ALTER TABLE predictions ADD COLUMN event_id TEXT")
            if "variant" not in columns:  # ... or before the TFLite variants
                db.execute(
                    "ALTER TABLE predictions ADD COLUMN variant TEXT NOT NULL DEFAULT 'savedmodel'"
                )
            db.execute(INDEX)
    except sqlite3.Error:
        db.close()
        raise
    return db


def _locked(err: BaseException) -> bool:
    return isinstance(err, sqlite3.OperationalError) and "locked" in str(err)


def connect(path: Path, timeout: float = 30.0) -> sqlite3.Connection:
    """Open (creating or upgrading) the log for writing: WAL mode, for several writers.

    Several workers (and a worker's threads) open a new log at once; switching it to WAL can
    fail with "database is locked" without waiting, so opening is retried up to ``timeout``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    for attempt in tenacity.Retrying(
        retry=tenacity.retry_if_exception(_locked),
        stop=tenacity.stop_after_delay(timeout),
        wait=tenacity.wait_fixed(0.05),
        reraise=True,
    ):
        with attempt:
            return _open(path, timeout)
    raise AssertionError("unreachable: tenacity returns or raises")  # pragma: no cover


def add_label(db: sqlite3.Connection, event_id: str, label: int, ts: float) -> int:
    """Record the true label of one answered image.

    Args:
        db: A connection from :func:`connect`.
        event_id: The id the service returned with the prediction.
        label: The true digit.
        ts: Unix time of the feedback.

    Returns:
        The class the model predicted for that event.

    Raises:
        UnknownEventError: If no prediction has the id.
        LabelExistsError: If the event already has a label.
    """
    # One write transaction for the check and the insert, taken up front: a read left open
    # while a worker's writer commits would make the insert fail with "database is locked".
    try:
        with db:
            db.execute("BEGIN IMMEDIATE")
            found = db.execute(
                "SELECT predicted_class FROM predictions WHERE event_id = ?", (event_id,)
            ).fetchall()
            if not found:
                raise UnknownEventError(event_id)
            db.execute("INSERT INTO labels VALUES (?, ?, ?)", (event_id, label, ts))
    except sqlite3.IntegrityError:
        raise LabelExistsError(event_id) from None
    return int(found[0][0])


def read_window(path: Path, window: int, model_version: str | None = None) -> Window:
    """The latest ``window`` predictions of one model version, with their labels.

    Args:
        path: The SQLite prediction log.
        window: How many of the latest predictions to take.
        model_version: Only this model's rows (None: the model that answered last).

    Returns:
        The window.

    Raises:
        LogError: If the log is missing, corrupt, empty or has no row for the version.
    """
    if not path.is_file():
        raise LogError(f"{path}: no prediction log; is the service running with this path?")
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            columns = {name for _, name, *_ in db.execute("PRAGMA table_info(predictions)")}
            # A log its first writer is still creating has no table yet: read as empty.
            versions = [v for (v,) in db.execute(
                "SELECT model_version FROM predictions GROUP BY model_version ORDER BY max(id)"
            )] if columns else []  # fmt: skip
            version = pick_version(versions, model_version, str(path))
            rows = db.execute(window_query(columns), (version, window)).fetchall()
            has_labels = db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'labels'"
            ).fetchone()
            # Only the window's labels, not the whole table (it grows with every label sent).
            labels = dict(db.execute(WINDOW_LABELS, (version, window))) if has_labels else {}
    except sqlite3.DatabaseError as err:
        raise LogError(f"{path}: not a readable prediction log ({err})") from None
    try:
        return to_window(version, rows, labels)
    except LogError as err:
        raise LogError(f"{path}: {err}") from None


class SqliteEvents:
    """The embedded prediction log as an event source (read-only)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def window(self, size: int, model_version: str | None = None) -> Window:
        """See :class:`~mnist_contracts.event_store.schema.EventSource`."""
        return read_window(self.path, size, model_version)

    def labelled(self) -> Iterator[LabelledEvent]:
        """See :class:`~mnist_contracts.event_store.schema.EventSource`."""
        if not self.path.is_file():
            raise LogError(f"{self.path}: no prediction log")
        try:
            with sqlite3.connect(f"file:{self.path}?mode=ro", uri=True) as db:
                if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'labels'").fetchone():
                    return  # a log its first writer is still creating: no labels yet
                rows = db.execute(
                    "SELECT p.event_id, p.model_version, p.predicted_class, l.label, p.image"
                    " FROM labels l JOIN predictions p ON p.event_id = l.event_id ORDER BY p.id"
                ).fetchall()
        except sqlite3.DatabaseError as err:
            raise LogError(f"{self.path}: not a readable prediction log ({err})") from None
        for event_id, version, cls, label, image in rows:
            yield LabelledEvent(event_id, version, int(cls), int(label), image_of(image))


class SqliteSink(WriterSink):
    """A worker's writer into the shared SQLite prediction log (an ``EventSink``)."""

    def __init__(
        self,
        path: Path,
        sync: bool = False,
        buffer: int = 10_000,
        on_dropped: Callable[[int], None] = _nothing,
        on_available: Callable[[bool], None] = _nothing,
    ) -> None:
        self.path, self.sync = path, sync
        self._local = threading.local()  # one connection per request thread (sync, labels)
        self._db: sqlite3.Connection | None = None  # the writer thread's own
        self.writer: BatchingWriter[Row] = BatchingWriter(
            "prediction log", self._commit_batch, (OSError, sqlite3.Error),
            capacity=buffer, batch=BATCH, probe=self._open_writer, finish=self._close_writer,
            on_dropped=on_dropped, on_available=on_available, where=str(path),
        )  # fmt: skip

    def _open_writer(self) -> sqlite3.Connection:
        if self._db is None:
            db = connect(self.path, timeout=5.0)
            # The queue in memory is what a SIGKILL can lose anyway; in WAL mode NORMAL loses
            # nothing more on a process crash (only on power loss), and spares an fsync a commit.
            db.execute("PRAGMA synchronous=NORMAL")
            self._db = db
        return self._db

    def _close_writer(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _commit_batch(self, rows: list[Row]) -> None:
        with (db := self._open_writer()):
            db.executemany(INSERT, rows)

    def _thread_db(self) -> sqlite3.Connection:
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
        """Queue one request's predictions (no I/O on the request thread).

        In sync mode, commit them here instead: the answer leaves only once they are on disk.

        Returns:
            The event id of each image.
        """
        ts, pid = time.time(), os.getpid()
        answered = split_request(classes, confidences, images)
        rows: list[Row] = [
            (ts, version, cls, conf, image, pid, event_id, variant)
            for event_id, cls, conf, image in answered
        ]
        ids = [event_id for event_id, *_ in answered]
        if self.sync and self.writer.available:
            try:
                with (db := self._thread_db()):
                    db.executemany(INSERT, rows)
                return ids
            except (OSError, sqlite3.Error) as err:
                self.writer.set_available(False, err)  # then queued: written when it is back
        self.writer.put(rows)
        return ids

    def label(self, event_id: str, label: int) -> int:
        """Record the true label of an answered image (see :func:`add_label`).

        An event this worker answered a moment ago may still be queued: the queue is flushed
        before an id is called unknown.
        """
        try:
            try:
                return add_label(self._thread_db(), event_id, label, time.time())
            except UnknownEventError:
                self.writer.flush()
                return add_label(self._thread_db(), event_id, label, time.time())
        except (OSError, sqlite3.OperationalError) as err:  # locked past the timeout, disk full
            raise EventStoreError(str(err)) from None
