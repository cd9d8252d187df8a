"""Shared fixtures: tiny, learnable digit-like data built in the test, never downloaded."""

from __future__ import annotations

import hashlib
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from mnist_pipeline.dataset import RawMnist, Split

if TYPE_CHECKING:
    from tests.redis_server import RedisServer

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A free TCP port on loopback, for servers the tests start."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def variables_digest(model_dir: Path) -> str:
    """SHA-256 over the exported model's variable files: equal means byte-identical weights."""
    digest = hashlib.sha256()
    for path in sorted((model_dir / "variables").iterdir()):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def make_digits(n: int, seed: int) -> Split:
    """``n`` images whose class is a bright bar at a class-specific place, plus noise.

    Easy enough that one short epoch learns it, and every image is distinct.
    """
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % 10).astype(np.uint8)
    rng.shuffle(labels)
    images = rng.integers(0, 40, size=(n, 28, 28), dtype=np.uint8)
    for i, label in enumerate(labels):
        row = 3 + 4 * (label % 5) + rng.integers(-1, 2)
        col = 4 if label < 5 else 16
        images[i, row : row + 3, col : col + 8] = 255
    return Split(images, labels)


@pytest.fixture
def tiny_raw() -> RawMnist:
    """A raw set shaped like MNIST, but 600 train and 200 test images."""
    return RawMnist(train=make_digits(600, seed=1), test=make_digits(200, seed=2))


@pytest.fixture
def tiny_params_yaml() -> str:
    """Params for a fast run on tiny data (one short epoch)."""
    return (
        "seed: 7\n"
        "preprocess: {val_size: 0.2, limit: null}\n"
        "train: {arch: mlp, epochs: 2, batch_size: 16, warmup_epochs: 0, units: 64,"
        " learning_rate: 0.003}\n"
        "evaluate: {mistakes: 9}\n"
    )


@pytest.fixture(autouse=True)
def isolated_mlflow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own embedded MLflow store (the default lands under ``DVC_ROOT``).

    A test that ran the pipeline in-process left ``mlflow.set_tracking_uri`` pointing at its
    store, which beats ``MLFLOW_TRACKING_URI``: a later test's models went to that store, not to
    its server. The process-wide URI is reset for every test (and restored after).
    """
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    if "mlflow" in sys.modules:
        from mlflow.tracking._tracking_service import utils

        monkeypatch.setattr(utils, "_tracking_uri", None)
    return tmp_path


@pytest.fixture
def redis_broker(tmp_path: Path) -> Iterator[RedisServer]:
    """A real Redis on a free loopback port, stopped after the test."""
    from tests.redis_server import redis_server

    with redis_server(tmp_path / "redis") as server:
        yield server
