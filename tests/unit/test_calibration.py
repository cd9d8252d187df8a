"""Temperature scaling: fitted on held-out data, it calibrates without moving any argmax."""

from __future__ import annotations

import numpy as np
import pytest

from mnist_pipeline.calibration import fit_temperature, reliability, with_temperature


def synthetic(n: int, sharpen: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from softmax(z) (calibrated by construction); the model says softmax(k z)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 1.5, (n, 10))
    z[np.arange(n), rng.integers(0, 10, n)] += 3.0  # a clear favourite, as digits have
    truth = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    labels = np.array([rng.choice(10, p=row) for row in truth])
    model = np.exp(sharpen * z) / np.exp(sharpen * z).sum(axis=1, keepdims=True)
    return model, labels


def ece(probabilities: np.ndarray, labels: np.ndarray) -> float:
    predicted = probabilities.argmax(axis=1)
    return reliability(probabilities.max(axis=1), predicted == labels).ece


@pytest.mark.parametrize("sharpen", [3.0, 0.4])  # over-confident, and under-confident
def test_a_fitted_temperature_calibrates_and_keeps_every_answer(sharpen: float) -> None:
    fit_probs, fit_labels = synthetic(4000, sharpen, seed=0)  # "validation"
    probs, labels = synthetic(4000, sharpen, seed=1)  # "test": never seen by the fit
    temperature = fit_temperature(fit_probs, fit_labels)
    assert temperature == pytest.approx(sharpen, rel=0.15)
    scaled = with_temperature(probs, temperature)
    assert ece(probs, labels) > 0.05
    assert ece(scaled, labels) < 0.02
    np.testing.assert_array_equal(scaled.argmax(axis=1), probs.argmax(axis=1))
    np.testing.assert_allclose(scaled.sum(axis=1), 1.0)


def test_the_same_data_give_the_same_temperature_and_undoing_it_restores_the_model() -> None:
    probs, labels = synthetic(2000, 2.0, seed=2)
    first, second = fit_temperature(probs, labels), fit_temperature(probs.copy(), labels)
    assert first == second
    restored = with_temperature(with_temperature(probs, first), 1 / first)
    np.testing.assert_allclose(restored, probs, atol=1e-9)
