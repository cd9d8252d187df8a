"""Shared fixtures: tiny, learnable digit-like data built in the test, never downloaded.

Helpers live in :mod:`tests.support`; the marks and the missing-tool rule in its plugin.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from mnist_pipeline.dataset import RawMnist
from tests.support.data import make_digits

if TYPE_CHECKING:
    from tests.support.redis_server import RedisServer
    from tests.support.serving import Serve

pytest_plugins = ["tests.support.plugin"]

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


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
def serve() -> Iterator[Serve]:
    """``serve(settings)``: an app built and started as a Gunicorn worker does (model loaded,
    threads running); every one is stopped after the test, as a worker's exit stops it."""
    from tests.support.serving import started

    with contextlib.ExitStack() as stack:
        yield lambda settings: stack.enter_context(started(settings))


@pytest.fixture(scope="session")
def shared_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One real Redis per worker on a free loopback port, stopped at the end of the session."""
    from tests.support.redis_server import redis_server

    with redis_server(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def redis_broker(shared_redis: RedisServer) -> RedisServer:
    """The session's Redis, empty (``FLUSHALL``: no stream, group or key of an earlier test).

    A test may stop and start it (a broker outage); if one leaves it stopped, the next gets it
    started again here.
    """
    if shared_redis.process is None or shared_redis.process.poll() is not None:
        shared_redis.start()
    with shared_redis.client() as client:
        client.flushall()
    return shared_redis
