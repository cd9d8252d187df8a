"""k stratified folds of the training split for ``train.cv_folds``; the validation split stays out.

One validation split cannot separate configurations that differ by a few images: k folds give k
held-out accuracies, and their mean and standard deviation sit beside the seed spread.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sklearn.model_selection import StratifiedKFold

Indices = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Fold:
    """One fold: train on ``train``, score on ``held_out`` (indices into the training split)."""

    number: int
    train: Indices
    held_out: Indices


def stratified_folds(labels: npt.NDArray[np.integer], k: int, seed: int) -> list[Fold]:
    """Split the training images into ``k`` folds with each digit's share kept in every fold.

    Args:
        labels: The training split's digits.
        k: How many folds (at least 2).
        seed: Seeds the shuffle, so the same params give the same folds.

    Returns:
        The folds: their held-out parts are disjoint and together cover every image.

    Raises:
        ValueError: If ``k`` < 2 or a digit has fewer than ``k`` images.
    """
    if k < 2:
        raise ValueError(f"train.cv_folds must be at least 2 (got {k}); 0 turns it off")
    counts = np.bincount(np.asarray(labels, np.int64))
    present = counts[counts > 0]
    if present.min() < k:
        raise ValueError(
            f"train.cv_folds {k}: a digit has only {present.min()} training images; "
            "use fewer folds or more data (preprocess.limit)"
        )
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    placeholder = np.zeros(len(labels))
    return [
        Fold(number, train.astype(np.int64), held.astype(np.int64))
        for number, (train, held) in enumerate(splitter.split(placeholder, labels))
    ]


def summarise(accuracies: list[float]) -> dict[str, float | list[float]]:
    """The held-out accuracies, their mean and their standard deviation (ddof 1, as for seeds)."""
    values = np.asarray(accuracies, np.float64)
    return {
        "fold_accuracy": [round(float(v), 6) for v in values],
        "mean": round(float(values.mean()), 6),
        "std": round(float(values.std(ddof=1)) if len(values) > 1 else 0.0, 6),
    }
