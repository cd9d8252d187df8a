"""Accuracy without labels: the calibrated confidences' Poisson-binomial estimate."""

from __future__ import annotations

import numpy as np
import pytest

from mnist_pipeline.performance import estimate_accuracy, poisson_binomial_pmf


def test_the_distribution_is_exact_on_a_case_worked_by_hand() -> None:
    pmf = poisson_binomial_pmf(np.array([0.5, 0.9]))
    np.testing.assert_allclose(pmf, [0.05, 0.5, 0.45])  # 0.5*0.1, 0.5*0.1+0.5*0.9, 0.5*0.9
    assert poisson_binomial_pmf(np.full(300, 0.97)).sum() == pytest.approx(1.0)


def test_the_interval_covers_the_true_accuracy_at_about_its_level() -> None:
    """Seeded windows of 500 calibrated answers (each right with its own confidence)."""
    rng = np.random.default_rng(0)
    covered, errors = 0, []
    windows = 400
    for _ in range(windows):
        confidence = 1.0 - rng.beta(0.3, 12.0, 500)  # mostly sure, a tail of unsure answers
        truth = float((rng.random(500) < confidence).mean())
        estimate = estimate_accuracy(confidence)
        covered += estimate.low <= truth <= estimate.high
        errors.append(estimate.accuracy - truth)
    assert 0.92 <= covered / windows <= 0.98
    assert abs(float(np.mean(errors))) < 0.002  # unbiased when calibration holds


def test_an_empty_window_is_an_error_and_a_sure_window_is_exact() -> None:
    with pytest.raises(ValueError, match="no predictions"):
        estimate_accuracy(np.array([]))
    sure = estimate_accuracy(np.ones(50))
    assert (sure.accuracy, sure.low, sure.high, sure.count) == (1.0, 1.0, 1.0, 50)
