"""The prediction log: one SQLite table that the service writes and the monitor reads.

One row per answered image. The service writes it in WAL mode from several workers; the monitor
opens it read-only. Both use the definitions here, so neither can drift from the other.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
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
    worker_pid INTEGER NOT NULL
)
"""
INSERT = (
    "INSERT INTO predictions (ts, model_version, predicted_class, confidence, image, worker_pid)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)

Row = tuple[float, str, int, float, bytes, int]


class LogError(Exception):
    """The log is missing, unreadable, empty, or has no rows for the model asked for."""


@dataclass(frozen=True)
class Window:
    """The most recent predictions of one model, newest first."""

    model_version: str
    ts: npt.NDArray[np.float64]
    predicted_class: npt.NDArray[np.int64]
    confidence: npt.NDArray[np.float64]
    images: npt.NDArray[np.uint8]


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating) the log for writing: WAL mode, so several workers share the file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=30)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(SCHEMA)
    return db


def read_window(path: Path, window: int, model_version: str | None = None) -> Window:
    """The latest ``window`` predictions of one model version.

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
            if not versions:
                raise LogError(f"{path}: the prediction log is empty")
            version = model_version or versions[-1]
            if version not in versions:
                raise LogError(
                    f"{path}: no predictions of model {version} (the log has "
                    f"{', '.join(versions)}); regenerate the reference for the served model "
                    "or pass --model-version"
                )
            rows = db.execute(
                "SELECT ts, predicted_class, confidence, image FROM predictions"
                " WHERE model_version = ? ORDER BY id DESC LIMIT ?",
                (version, window),
            ).fetchall()
    except sqlite3.DatabaseError as err:
        raise LogError(f"{path}: not a readable prediction log ({err})") from None
    if any(len(r[3]) != IMAGE_BYTES for r in rows):
        raise LogError(f"{path}: corrupt rows (images are not 28x28 bytes)")
    images = np.frombuffer(b"".join(r[3] for r in rows), np.uint8).reshape(-1, *IMAGE_SHAPE)
    return Window(
        version,
        np.array([r[0] for r in rows], np.float64),
        np.array([r[1] for r in rows], np.int64),
        np.array([r[2] for r in rows], np.float64),
        images,
    )
