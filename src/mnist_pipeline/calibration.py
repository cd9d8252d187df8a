"""Calibration: does a confidence of 0.9 mean right nine times in ten?

Expected calibration error (ECE) over equal-width confidence bins, and temperature scaling, as
in Guo et al. 2017 ("On Calibration of Modern Neural Networks"). Written here: scikit-learn's
``calibration_curve`` is for binary problems and returns no bin counts, ECE is ten lines of
numpy, and a temperature is one scalar fitted by scipy; the label smoothing that helps accuracy
leaves the raw probabilities under-confident (a clean digit "92% sure"), and one temperature,
fitted on the validation split and applied inside the export, corrects that without moving any
argmax.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

BINS = 15
EPSILON = 1e-12  # the floor under a probability before its log (float32 softmax gives exact 0s)
# A temperature outside this range means the model, not its calibration, is broken.
TEMPERATURE_BOUNDS = (0.05, 20.0)


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


def with_temperature(
    probabilities: npt.NDArray[np.floating], temperature: float
) -> npt.NDArray[np.float64]:
    """``softmax(log(p) / T)``: the same ranking, sharper (T < 1) or softer (T > 1).

    Args:
        probabilities: ``[N, K]`` rows that sum to 1.
        temperature: T > 0.

    Returns:
        ``[N, K]`` rescaled probabilities (float64).
    """
    logits = np.log(np.maximum(np.asarray(probabilities, np.float64), EPSILON)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    scaled = np.exp(logits)
    return np.asarray(scaled / scaled.sum(axis=1, keepdims=True), np.float64)


def fit_temperature(
    probabilities: npt.NDArray[np.floating], labels: npt.NDArray[np.integer]
) -> float:
    """The temperature that minimises the negative log-likelihood of held-out labels.

    Args:
        probabilities: ``[N, K]`` the model's probabilities on held-out images (validation).
        labels: ``[N]`` their true classes.

    Returns:
        T, rounded to 4 significant digits (the same data give the same exported bytes).
    """
    from scipy.optimize import minimize_scalar

    logits = np.log(np.maximum(np.asarray(probabilities, np.float64), EPSILON))
    rows = np.arange(len(labels))

    def nll(log_t: float) -> float:
        z = logits / np.exp(log_t)
        z -= z.max(axis=1, keepdims=True)
        return float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[rows, labels]))

    low, high = np.log(TEMPERATURE_BOUNDS[0]), np.log(TEMPERATURE_BOUNDS[1])
    result = minimize_scalar(nll, bounds=(low, high), method="bounded", options={"xatol": 1e-5})
    return float(f"{np.exp(result.x):.4g}")
