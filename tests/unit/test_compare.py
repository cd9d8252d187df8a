"""The report's statistics against hand-computed cases and simulated truth."""

from __future__ import annotations

import numpy as np
import pytest

from mnist_pipeline.calibration import reliability
from mnist_pipeline.compare import (
    BETTER,
    NO_CHANGE,
    WORSE,
    McNemar,
    mcnemar_exact,
    paired_bootstrap,
    per_class,
    verdict,
)


def pairs(both: int, b: int, c: int, neither: int) -> tuple[np.ndarray, np.ndarray]:
    """Right/wrong arrays with the given contingency counts (b: newly wrong, c: newly right)."""
    base = np.array([True] * both + [True] * b + [False] * c + [False] * neither)
    new = np.array([True] * both + [False] * b + [True] * c + [False] * neither)
    return base, new


@pytest.mark.parametrize(
    ("b", "c", "pvalue", "expected"),
    [
        (1, 2, 1.0, NO_CHANGE),  # P(X <= 1 | n=3) * 2 = 2 * 4/8 -> 1
        (0, 10, 2 / 1024, BETTER),  # 2 * 0.5**10
        (10, 0, 2 / 1024, WORSE),
        (3, 9, 2 * sum(__import__("math").comb(12, k) for k in range(4)) / 4096, NO_CHANGE),
        (0, 0, 1.0, NO_CHANGE),
    ],
)
def test_mcnemar_exact_matches_hand_computed_cases(
    b: int, c: int, pvalue: float, expected: str
) -> None:
    base, new = pairs(9000, b, c, 40)
    test = mcnemar_exact(base, new)
    assert (test.b, test.c) == (b, c)
    assert test.pvalue == pytest.approx(pvalue, rel=1e-9)
    assert verdict(test, 0.05) == expected


def test_the_verdict_follows_the_significance_level_not_the_sign() -> None:
    test = McNemar(b=3, c=9, pvalue=0.146)
    assert verdict(test, 0.05) == NO_CHANGE  # 6 more right, and still noise at 0.05
    assert verdict(test, 0.2) == BETTER


def test_the_bootstrap_interval_is_reproducible_for_a_seed() -> None:
    base, new = pairs(9900, 20, 35, 45)
    low, high = paired_bootstrap(base, new, seed=0)
    # Stored from this implementation (scipy percentile bootstrap, 2000 resamples, seed 0), and
    # close to the normal approximation: 15/10000 +- 1.96 * sqrt(55/10000 / 10000).
    assert (round(low, 4), round(high, 4)) == (0.0001, 0.003)
    half = 1.96 * np.sqrt(55 / 10_000 / 10_000)
    assert low == pytest.approx(0.0015 - half, abs=3e-4)
    assert high == pytest.approx(0.0015 + half, abs=3e-4)
    assert paired_bootstrap(base, new, seed=0) == (low, high)


def test_the_interval_covers_a_known_difference_about_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(123)
    covered = 0
    runs = 200
    for _ in range(runs):
        # Per image: base right with p=0.97, new right with p=0.98 (true change +0.01).
        base = rng.uniform(size=2000) < 0.97
        new = rng.uniform(size=2000) < 0.98
        low, high = paired_bootstrap(base, new, seed=int(rng.integers(1 << 30)), resamples=500)
        covered += low <= 0.01 <= high
    assert 0.90 * runs <= covered <= 0.99 * runs


def test_recall_per_digit_counts_the_flips() -> None:
    labels = np.array([0, 0, 1, 1, 1, 2])
    base = np.array([0, 1, 1, 1, 0, 2])
    new = np.array([0, 0, 1, 0, 1, 2])
    rows = {r.digit: r for r in per_class(labels, base, new)}
    assert (rows[0].base_recall, rows[0].new_recall, rows[0].newly_right) == (0.5, 1.0, 1)
    assert (rows[1].newly_wrong, rows[1].newly_right) == (1, 1)
    assert rows[2].count == 1
    assert rows[3].count == 0


def test_ece_of_a_calibrated_and_an_overconfident_model() -> None:
    rng = np.random.default_rng(0)
    # Calibrated: right with exactly the stated probability; confidences high, as a CNN's are.
    confidence = rng.beta(8, 1, 10_000).clip(0.1, 1.0)
    correct = rng.uniform(size=10_000) < confidence
    assert reliability(confidence, correct).ece < 0.01
    # Overconfident: always 0.9, right 60% of the time.
    confidence = np.full(10_000, 0.9)
    correct = rng.uniform(size=10_000) < 0.6
    assert reliability(confidence, correct).ece == pytest.approx(0.3, abs=0.02)
