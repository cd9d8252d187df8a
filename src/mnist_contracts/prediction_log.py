"""The prediction log: the SQLite tables that the service writes and the monitor reads.

One row per answered image, keyed by the server's event id, and one row per true label sent to
``POST /feedback``. The service writes it in WAL mode from several workers; the monitor opens it
read-only. Both use the definitions here, so neither can drift from the other. With
``EVENTS_URL`` set the same events go to a Redis stream instead (:mod:`.events`).
"""

from __future__ import annotations

import sqlite3
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from mnist_contracts.model import IMAGE_BYTES, IMAGE_SHAPE

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


def window_query(columns: set[str]) -> str:
    """The window's SELECT for a log with these ``predictions`` columns (older logs lack some)."""
    event_id = "coalesce(event_id, 'row-' || id)" if "event_id" in columns else "'row-' || id"
    variant = "variant" if "variant" in columns else "'savedmodel'"
    return _WINDOW.format(event_id, variant)


class LogError(Exception):
    """The log is missing, unreadable, empty, or has no rows for the model asked for."""


class UnknownEventError(LogError):
    """No prediction has this event id."""


class LabelExistsError(LogError):
    """The event already has a true label."""


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


def connect(path: Path, timeout: float = 30.0) -> sqlite3.Connection:
    """Open (creating or upgrading) the log for writing: WAL mode, for several writers.

    Several workers (and a worker's threads) open a new log at once; switching it to WAL can
    fail with "database is locked" without waiting, so opening is retried up to ``timeout``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    while True:
        try:
            return _open(path, timeout)
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


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


def to_window(
    version: str,
    rows: list[tuple[str, float, int, float, bytes, str]],
    labels: dict[str, int],
) -> Window:
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
            versions = [v for (v,) in db.execute(
                "SELECT model_version FROM predictions GROUP BY model_version ORDER BY max(id)"
            )]  # fmt: skip
            version = pick_version(versions, model_version, str(path))
            columns = {name for _, name, *_ in db.execute("PRAGMA table_info(predictions)")}
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
