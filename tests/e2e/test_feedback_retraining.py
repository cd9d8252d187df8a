"""Live mistakes into the next training set: `mnist collect`, then one `dvc exp run`."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from mnist_contracts.event_store import new_event_id
from mnist_contracts.event_store.sqlite import INSERT, add_label, connect
from mnist_pipeline.markdown import rows
from tests.support import mnist
from tests.support.data import make_digits
from tests.support.project_repo import run

pytestmark = pytest.mark.slow


def labelled_log(path: Path, n: int) -> list[str]:
    """A service log with ``n`` answered images whose true labels came back, 40% of them wrong."""
    live = make_digits(n, seed=21)
    db = connect(path)
    ids = [new_event_id() for _ in range(n)]
    answers = enumerate(zip(live.x, live.y, ids, strict=True))
    rows = [(time.time(), "sha256:live", (int(y) + (i % 5 < 2)) % 10, 0.9, x.tobytes(), 1, e,
             "savedmodel") for i, (x, y, e) in answers]  # fmt: skip
    with db:
        db.executemany(INSERT, rows)
    for event_id, label in zip(ids, live.y.tolist(), strict=True):
        add_label(db, event_id, label, time.time())
    # One more answered image without a label: not training data.
    with db:
        row = (time.time(), "sha256:live", 3, 0.5, bytes(784), 1, new_event_id(), "tflite-int8")
        db.execute(INSERT, row)
    db.close()
    return ids


def test_collected_feedback_trains_in_one_experiment(repo_after_repro: Path) -> None:
    repo = repo_after_repro
    before = json.loads((repo / "reports/data.json").read_text())

    ids = labelled_log(repo / "var/predictions.db", 60)
    collect = mnist("collect", "--events", "var/predictions.db")
    out = run(collect, repo)
    assert "60 new labelled events, 60 in data/feedback/feedback.npz" in out
    assert (repo / "data/feedback/feedback.npz.dvc").is_file()  # DVC tracks it, git its pointer
    assert "feedback.npz" in (repo / "data/feedback/.gitignore").read_text()
    assert "0 new labelled events" in run(collect, repo)  # deduplicated by event id
    stored = np.load(repo / "data/feedback/feedback.npz")
    assert sorted(i.decode() for i in stored["ids"]) == sorted(ids)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "collected feedback"], repo)

    # Off by default: collecting changes no split.
    assert json.loads((repo / "reports/data.json").read_text()) == before
    run(["dvc", "exp", "run", "-q", "-S", "preprocess.feedback=true"], repo)
    after = json.loads((repo / "reports/data.json").read_text())
    assert after["train"]["count"] == before["train"]["count"] + 60
    assert (after["val"], after["test"]) == (before["val"], before["test"])
    assert after["feedback"] == {"added": 60, "left_out": 0, "model_was_wrong": 24}
    assert (repo / "models/mnist/saved_model.pb").is_file()  # the experiment trained on them

    # The pull-request report shows what it changed: the param, the data, the model's metrics.
    report = [*mnist("report"), "--base", "HEAD",
              "--out", "reports/pr", "--no-cost"]  # fmt: skip
    run(report, repo)
    markdown = (repo / "reports/pr/report.md").read_text()
    assert ["preprocess.feedback", "False", "True"] in rows(markdown)
    assert "feedback.added" in markdown
    assert "train.count" in markdown
