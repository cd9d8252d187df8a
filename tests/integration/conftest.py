"""Fixtures for the stage tests: a workspace laid out like the repository."""

from pathlib import Path

import numpy as np
import pytest

from mnist_pipeline.dataset import RawMnist
from tests.support.project_repo import git


@pytest.fixture
def workdir(tmp_path: Path, tiny_raw: RawMnist, tiny_params_yaml: str) -> Path:
    """A directory laid out like the repository, with tiny raw data and params."""
    (tmp_path / "params.yaml").write_text(tiny_params_yaml)
    raw = tmp_path / "data/raw/mnist.npz"
    raw.parent.mkdir(parents=True)
    np.savez(
        raw,
        x_train=tiny_raw.train.x,
        y_train=tiny_raw.train.y,
        x_test=tiny_raw.test.x,
        y_test=tiny_raw.test.y,
    )
    # The committed workspace of main, the one place a run may move `production`.
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "add", "params.yaml")
    git(tmp_path, "commit", "-qm", "params")
    return tmp_path
