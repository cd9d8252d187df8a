"""Fixtures for the prediction service: a tiny SavedModel built here, and app factories."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from app.settings import Settings
from mnist_pipeline.dataset import Split
from tests.support.models import export_real_mnist_model, export_tiny_model
from tests.support.serving import started


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_tiny_model(tmp_path_factory.mktemp("model") / "mnist", seed=1)


@pytest.fixture(scope="session")
def digit_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Split]:
    """A small MLP trained on real MNIST (12,000 images, 3 epochs), exported with its variants.

    Shared by the tests that need a model that reads digits (the variants' agreement, the page's
    strokes); its tests are one xdist group, so it is trained once. 12,000 images and 128 units
    are what the page's hand-drawn strokes need; the variants' agreement holds on it too.
    """
    directory = tmp_path_factory.mktemp("digit-model") / "mnist"
    return directory, export_real_mnist_model(directory, 12000, 128)


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
    with started(make_settings(max_images=4)) as app, app.test_client() as test_client:
        yield test_client
