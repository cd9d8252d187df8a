"""An ensemble is one exported model whose output is the mean of its members' outputs."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from mnist_contracts.lite import LiteModel, lite_file
from mnist_contracts.model import load_serve
from mnist_pipeline.models import build_model, ensemble
from mnist_pipeline.params import TrainParams
from mnist_pipeline.saved_model import export

pytestmark = pytest.mark.slow


def members(count: int) -> list[keras.Model]:
    params = TrainParams(arch="mlp", units=16)
    built = []
    for seed in range(count):
        keras.utils.set_random_seed(seed)
        built.append(build_model(params))
    return built


def test_the_export_of_three_members_answers_their_mean(tmp_path: Path) -> None:
    three = members(3)
    images = np.random.default_rng(0).integers(0, 256, (8, 28, 28), dtype=np.uint8)
    expected = np.mean([np.asarray(m(images, training=False)) for m in three], axis=0)
    export(ensemble(three), tmp_path / "model")
    answered = load_serve(tmp_path / "model")(images)
    np.testing.assert_allclose(answered, expected, atol=1e-6)
    np.testing.assert_allclose(answered.sum(axis=1), 1.0, atol=1e-5)
    lite = LiteModel(lite_file(tmp_path / "model", "tflite-float"))
    np.testing.assert_allclose(lite(images), expected, atol=1e-4)


def test_one_member_is_the_model_itself() -> None:
    [only] = members(1)
    assert ensemble([only]) is only
