"""Magnitude pruning (``train.prune``): tfmot's schedule, exact masks, and the target reached."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml

from mnist_pipeline.models import build_model
from mnist_pipeline.params import TrainParams
from mnist_pipeline.pruning import (
    MagnitudePruning,
    magnitude_mask,
    polynomial_sparsity,
    prunable,
    sparsity,
)
from tests.support.stages import run_evaluate, run_preprocess, run_train


def test_the_schedule_is_tfmots_polynomial_decay() -> None:
    assert polynomial_sparsity(0, 10, 110, 0.8) == 0.0
    assert polynomial_sparsity(10, 10, 110, 0.8) == 0.0
    assert polynomial_sparsity(60, 10, 110, 0.8) == pytest.approx(0.8 * (1 - 0.5**3))
    assert polynomial_sparsity(110, 10, 110, 0.8) == pytest.approx(0.8)
    assert polynomial_sparsity(500, 10, 110, 0.8) == pytest.approx(0.8)


def test_the_mask_drops_exactly_the_smallest_weights() -> None:
    weights = np.array([[0.5, -0.1, 0.05], [-2.0, 0.3, 0.0]], np.float32)
    mask = magnitude_mask(weights, 0.5)
    assert mask.tolist() == [[True, False, False], [True, True, False]]
    assert magnitude_mask(weights, 0.0).all()
    ties = np.ones((4, 4), np.float32)  # equal magnitudes: positions decide, run after run
    assert np.array_equal(magnitude_mask(ties, 0.25), magnitude_mask(ties, 0.25))
    assert int((~magnitude_mask(ties, 0.25)).sum()) == 4


@pytest.mark.slow
def test_a_fit_with_the_callback_reaches_the_target_sparsity() -> None:
    """A small MLP on random digits, 40 steps: the mechanism, not the accuracy, is under test."""
    keras.utils.set_random_seed(0)
    model = build_model(TrainParams(arch="mlp", units=32))
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (320, 28, 28), dtype=np.uint8)
    labels = keras.utils.to_categorical(rng.integers(0, 10, 320), 10)
    callback = MagnitudePruning(0.7, begin=5, end=30, frequency=5)
    model.fit(images, labels, batch_size=16, epochs=2, callbacks=[callback], verbose=0)
    kernels = [np.asarray(k.numpy()) for k in prunable(model)]
    for kernel in kernels:  # each kernel at the target (floor of 70% of its weights)
        assert int((kernel == 0).sum()) >= int(0.7 * kernel.size)
    assert sparsity(kernels) == pytest.approx(0.7, abs=0.01)


@pytest.mark.slow
def test_train_prune_exports_a_sparse_model_that_compresses(workdir: Path) -> None:
    """``train.prune.sparsity: 0.8`` on tiny data (2 epochs): zeros in the export, gzip smaller."""
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["train"]["prune"] = {"sparsity": 0.8, "begin": 0.0, "end": 0.5}
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    run_preprocess(workdir)
    run_train(workdir)
    run_evaluate(workdir)
    compression = json.loads((workdir / "reports/compression.json").read_text())
    assert compression["kernel_sparsity"] >= 0.79
    gz, raw = compression["gzip_bytes"], compression["size_bytes"]
    assert gz["tflite-float"] < 0.5 * raw["tflite-float"]  # the zeros compress away
    metrics = json.loads((workdir / "reports/metrics.json").read_text())
    assert metrics["tflite-int8"]["accuracy"] > 0.5  # still a classifier on the easy tiny data
