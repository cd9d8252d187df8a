"""The event contract (ids, image share, old logs) and the shadow comparison, without servers."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from mnist_contracts.event_store import carries_image, new_event_id, open_events
from mnist_contracts.event_store.sqlite import (
    LabelExistsError,
    LogError,
    SqliteEvents,
    UnknownEventError,
    add_label,
    connect,
    read_window,
)
from mnist_pipeline.shadow_verdict import compare

OLD_SCHEMA = """
CREATE TABLE predictions (
    id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL, model_version TEXT NOT NULL,
    predicted_class INTEGER NOT NULL, confidence REAL NOT NULL, image BLOB NOT NULL,
    worker_pid INTEGER NOT NULL
)
"""


def test_the_image_share_is_a_stable_draw_from_the_event_id() -> None:
    ids = [new_event_id() for _ in range(4000)]
    assert len(set(ids)) == 4000
    kept = [carries_image(i, 0.3) for i in ids]
    assert kept == [carries_image(i, 0.3) for i in ids]  # replays agree
    assert 0.27 < sum(kept) / len(ids) < 0.33
    assert all(carries_image(i, 1.0) for i in ids[:10])
    assert not any(carries_image(i, 0.0) for i in ids[:10])


def test_a_log_written_before_event_ids_is_upgraded_and_still_read(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.execute(OLD_SCHEMA)
        db.execute("INSERT INTO predictions VALUES (NULL, 1.0, 'v1', 3, 0.9, ?, 1)", (bytes(784),))
    assert read_window(path, 10).event_ids == ["row-1"]  # read-only: not upgraded by reading
    db = connect(path)
    db.execute(
        "INSERT INTO predictions (ts, model_version, predicted_class, confidence, image,"
        " worker_pid, event_id) VALUES (2.0, 'v1', 4, 0.8, ?, 1, 'e2')", (bytes(784),)
    )  # fmt: skip
    db.commit()
    assert add_label(db, "e2", 4, 3.0) == 4
    with pytest.raises(LabelExistsError):
        add_label(db, "e2", 5, 4.0)
    with pytest.raises(UnknownEventError):
        add_label(db, "nope", 1, 4.0)
    window = open_events(path).window(10)
    assert window.event_ids == ["e2", "row-1"]
    assert window.labels == {"e2": 4}
    assert window.variants == {"savedmodel": 2}  # rows from before the variants: the SavedModel
    assert [e.event_id for e in SqliteEvents(path).labelled()] == ["e2"]


def test_unreadable_sources_are_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(LogError, match="no prediction log"):
        open_events(tmp_path / "missing.db").window(5)
    (tmp_path / "junk.db").write_bytes(b"not sqlite" * 100)
    with pytest.raises(LogError, match="not a readable prediction log"):
        open_events(tmp_path / "junk.db").window(5)
    connect(tmp_path / "empty.db").close()
    with pytest.raises(LogError, match="no predictions yet"):
        open_events(tmp_path / "empty.db").window(5)
    # A log its first writer has created but not yet given its tables (WAL header only).
    fresh = sqlite3.connect(tmp_path / "new.db")
    fresh.execute("PRAGMA journal_mode=WAL").fetchone()
    fresh.close()
    with pytest.raises(LogError, match="no predictions yet"):
        open_events(tmp_path / "new.db").window(5)
    assert list(SqliteEvents(tmp_path / "new.db").labelled()) == []


def test_shadow_comparison_counts_flips_and_accuracies() -> None:
    pairs = [(f"e{i}", i % 10, (i + (i % 5 == 0)) % 10) for i in range(100)]
    labels = {f"e{i}": i % 10 for i in range(0, 100, 2)}
    result = compare("prod", "cand", pairs, labels)
    assert result.events == 100
    assert result.disagreement == pytest.approx(0.2)
    assert result.flips[0, 1] == 10  # i = 0, 10, ..., 90: production 0, candidate 1
    assert int(result.flips.sum()) == 100
    assert (result.labelled, result.production_correct) == (50, 50)
    assert result.candidate_correct == 40  # the even multiples of five were flipped
    assert result.verdict(100, 0.25) == (True, "passes: 100 events, disagreement 20.00% <= 25.00%")
    assert result.verdict(101, 0.25)[0] is False
    assert "disagrees with production on 20.00%" in result.verdict(100, 0.1)[1]
    as_dict = result.as_dict()
    assert as_dict["flips"]["0->1"] == 10
    assert as_dict["candidate_accuracy"] == 0.8
    text = "\n".join(result.lines())
    assert "agreement 80.00%" in text
    assert "candidate accuracy 80.00%" in text
    empty = compare("p", "c", [], {})
    assert (empty.disagreement, empty.accuracy(0)) == (0.0, None)
    assert np.trace(empty.flips) == 0
