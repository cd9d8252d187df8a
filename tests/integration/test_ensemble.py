"""An ensemble is one exported model whose output is the mean of its members' outputs, and the
export serves probabilities calibrated by the temperature that train fits after averaging."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml

from mnist_contracts.lite import LiteModel, lite_file
from mnist_contracts.model import load_serve
from mnist_pipeline.calibration import with_temperature
from mnist_pipeline.models import build_model, calibrated, ensemble
from mnist_pipeline.params import TrainParams
from mnist_pipeline.saved_model import export, load, load_members
from mnist_pipeline.stages import reference
from tests.support.stages import run_evaluate, run_preprocess, run_train

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
    assert calibrated(only, 1.0) is only


def test_a_calibrated_export_serves_the_rescaled_mean_on_every_variant(tmp_path: Path) -> None:
    three = members(3)
    images = np.random.default_rng(1).integers(0, 256, (8, 28, 28), dtype=np.uint8)
    mean = np.mean([np.asarray(m(images, training=False)) for m in three], axis=0)
    expected = with_temperature(mean, 0.25)
    model = calibrated(ensemble(three), 0.25)
    export(model, tmp_path / "model")
    served = load_serve(tmp_path / "model")(images)
    np.testing.assert_allclose(served, expected, atol=1e-5)
    np.testing.assert_array_equal(served.argmax(axis=1), mean.argmax(axis=1))
    assert load_members(tmp_path / "model") is not None  # evaluate still sees the members
    lite = LiteModel(lite_file(tmp_path / "model", "tflite-float"))
    np.testing.assert_allclose(lite(images), expected, atol=1e-4)


def test_train_ensemble_2_trains_exports_and_evaluates_both_members(workdir: Path) -> None:
    """``train.ensemble: 2`` on tiny data (one epoch each: only the wiring is asserted)."""
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["train"].update(ensemble=2, epochs=1)
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    run_preprocess(workdir)
    run_train(workdir)
    test = np.load(workdir / "data/prepared/test.npz")
    model_dir = workdir / "models/mnist"
    each = load_members(model_dir)
    assert each is not None
    per_member = each(test["x"])
    assert per_member.shape == (2, len(test["y"]), 10)
    # The members differ (seeds 7 and 8), and the served answer is their mean, calibrated by the
    # temperature fitted on the validation split after averaging.
    assert not np.allclose(per_member[0], per_member[1])
    temperature = json.loads((workdir / "reports/train/metrics.json").read_text())["temperature"]
    assert temperature != 1.0
    np.testing.assert_allclose(load(model_dir)(test["x"]),
                               with_temperature(per_member.mean(axis=0), temperature),
                               atol=1e-5)  # fmt: skip
    run_evaluate(workdir)
    metrics = json.loads((workdir / "reports/metrics.json").read_text())
    assert metrics["calibration"]["temperature"] == temperature
    assert metrics["calibration"]["ece_after"] == metrics["test"]["ece"]
    accuracies = [(p.argmax(axis=1) == test["y"]).mean() for p in per_member]
    assert [metrics["members"][k]["accuracy"] for k in ("0", "1")] == pytest.approx(accuracies)
    assert metrics["tflite-float"]["agreement"] >= 0.99  # the LiteRT export is the ensemble too
    reference.main(workdir)  # the drift reference takes the ensemble as any model
    assert list((workdir / "data/reference").iterdir())


def test_one_member_exports_no_members_function(tmp_path: Path) -> None:
    [only] = members(1)
    export(ensemble([only]), tmp_path / "model")
    assert load_members(tmp_path / "model") is None
