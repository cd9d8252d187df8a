"""``train.cv_folds``: the train stage scores k folds beside the model it exports, unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.support import tree_digest
from tests.support.stages import run_preprocess, run_stage_process

pytestmark = pytest.mark.slow


def test_three_folds_are_scored_and_the_exported_model_is_the_same(workdir: Path) -> None:
    """Tiny data, one epoch: the assertion is on the wiring and the bytes, not on accuracy."""
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["train"].update(epochs=1)
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    run_preprocess(workdir)
    run_stage_process(workdir, "train")
    without = tree_digest(workdir / "models/mnist")
    assert "cv" not in json.loads((workdir / "reports/train/metrics.json").read_text())

    params["train"].update(cv_folds=3)
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    run_stage_process(workdir, "train")
    cv = json.loads((workdir / "reports/train/metrics.json").read_text())["cv"]
    assert len(cv["fold_accuracy"]) == 3
    assert all(0.0 <= a <= 1.0 for a in cv["fold_accuracy"])
    assert cv["mean"] == pytest.approx(sum(cv["fold_accuracy"]) / 3, abs=1e-6)
    assert cv["std"] >= 0
    # The folds measure the configuration; the model trained after them is the one without.
    assert tree_digest(workdir / "models/mnist") == without
