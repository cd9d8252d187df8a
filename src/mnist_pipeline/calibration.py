"""Calibration: does a confidence of 0.9 mean right nine times in ten?

Expected calibration error (ECE) over equal-width confidence bins, as in Guo et al. 2017 ("On
Calibration of Modern Neural Networks"). Written here: scikit-learn's ``calibration_curve`` is
for binary problems and returns no bin counts, and ECE is ten lines of numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

BINS = 15


@dataclass(frozen=True)
class Reliability:
    """Per-bin mean confidence, accuracy and count (empty bins have count 0)."""

    edges: npt.NDArray[np.float64]
    confidence: npt.NDArray[np.float64]
    accuracy: npt.NDArray[np.float64]
    count: npt.NDArray[np.int64]

    @property
    def ece(self) -> float:
        """Expected calibration error: the count-weighted mean |accuracy - confidence|."""
        total = int(self.count.sum())
        if total == 0:
            return 0.0
        gaps = np.abs(self.accuracy - self.confidence) * self.count
        return float(gaps.sum() / total)


def reliability(
    confidence: npt.NDArray[np.floating], correct: npt.NDArray[np.bool_], bins: int = BINS
) -> Reliability:
    """Bin predictions by confidence (the top class's probability).

    Args:
        confidence: ``[N]`` probability of the predicted class.
        correct: ``[N]`` whether the prediction was right.
        bins: Number of equal-width bins over (0, 1].

    Returns:
        The reliability table; ``.ece`` is the expected calibration error.
    """
    edges = np.linspace(0.0, 1.0, bins + 1)
    # Bin i holds (edges[i], edges[i+1]]; a confidence of exactly 0 goes to the first bin.
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    count = np.bincount(index, minlength=bins).astype(np.int64)
    safe = np.maximum(count, 1)
    conf_sum = np.bincount(index, weights=np.asarray(confidence, np.float64), minlength=bins)
    right = np.bincount(index, weights=np.asarray(correct, np.float64), minlength=bins)
    return Reliability(edges, conf_sum / safe, right / safe, count)
