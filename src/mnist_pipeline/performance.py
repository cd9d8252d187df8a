"""Accuracy estimated without labels, from calibrated confidences (the idea of NannyML's CBPE).

When the probabilities are calibrated (the export applies a fitted temperature), the confidence
of each answer is the probability that it is right. The number of right answers in a window is
then a sum of independent Bernoulli variables with those probabilities: a Poisson-binomial
variable, whose mean gives the expected accuracy and whose distribution gives an interval.
Written against numpy rather than adding NannyML to the images: it brings xgboost, lightgbm, a
cloud storage client and usage reporting that is on by default, for what is a mean and a
convolution here. The estimate assumes calibration holds on the traffic: under covariate shift
it is optimistic, so a harmful shift is also judged by drift and by labels when they come back.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class Estimate:
    """Expected accuracy of a window and a central interval of the accuracy it may have."""

    accuracy: float
    low: float
    high: float
    count: int
    level: float

    def as_dict(self) -> dict[str, float | int]:
        """JSON-ready, rounded."""
        return {"accuracy": round(self.accuracy, 6), "low": round(self.low, 6),
                "high": round(self.high, 6), "count": self.count, "level": self.level}  # fmt: skip


def poisson_binomial_pmf(probabilities: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
    """P(k successes) for k = 0..n, independent trials with the given success probabilities.

    Args:
        probabilities: ``[n]`` values in [0, 1].

    Returns:
        ``[n + 1]`` probabilities summing to 1 (exact, by repeated convolution).
    """
    pmf = np.ones(1)
    for p in np.clip(np.asarray(probabilities, np.float64), 0.0, 1.0):
        pmf = np.convolve(pmf, (1.0 - p, p))
    return pmf


def estimate_accuracy(confidence: npt.NDArray[np.floating], level: float = 0.95) -> Estimate:
    """The window's accuracy estimated from the confidence of each answer.

    Args:
        confidence: ``[n]`` calibrated probability of each predicted class.
        level: The interval's coverage.

    Returns:
        The mean confidence, and the interval of right answers / n holding ``level`` of the
        Poisson-binomial distribution.

    Raises:
        ValueError: An empty window.
    """
    p = np.asarray(confidence, np.float64)
    if p.size == 0:
        raise ValueError("no predictions to estimate accuracy from")
    cdf = np.cumsum(poisson_binomial_pmf(p))
    tail = (1.0 - level) / 2
    low = int(np.searchsorted(cdf, tail))
    high = int(np.searchsorted(cdf, 1.0 - tail))
    return Estimate(float(p.mean()), low / p.size, min(high, p.size) / p.size, int(p.size), level)
