"""Is a change really better? Paired statistics over the same test images, two models.

Both models answered the same images, so the comparison is paired: what matters is the images
on which they disagree about being right. McNemar's exact test (statsmodels) decides on those
discordant pairs; a paired bootstrap (scipy) gives the 95% interval of the accuracy change.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

NUM_CLASSES = 10
BETTER, WORSE, NO_CHANGE = "better", "worse", "no detectable change"


@dataclass(frozen=True)
class McNemar:
    """Discordant pairs and McNemar's exact p-value.

    ``b``: right at the base, wrong now (newly wrong); ``c``: wrong at the base, right now.
    """

    b: int
    c: int
    pvalue: float


def mcnemar_exact(
    base_correct: npt.NDArray[np.bool_], new_correct: npt.NDArray[np.bool_]
) -> McNemar:
    """McNemar's exact (binomial) test on the discordant pairs.

    Args:
        base_correct: ``[N]`` whether the base model was right on each image.
        new_correct: ``[N]`` the same for the new model, image for image.

    Returns:
        ``b``, ``c`` and the two-sided exact p-value (1.0 when there is no discordant pair).
    """
    from statsmodels.stats.contingency_tables import mcnemar

    b = int(np.sum(base_correct & ~new_correct))
    c = int(np.sum(~base_correct & new_correct))
    a = int(np.sum(base_correct & new_correct))
    d = int(np.sum(~base_correct & ~new_correct))
    if b + c == 0:
        return McNemar(b, c, 1.0)
    result = mcnemar([[a, b], [c, d]], exact=True)
    return McNemar(b, c, float(result.pvalue))


def verdict(test: McNemar, alpha: float) -> str:
    """The verdict (better, worse, no detectable change) from the test at level ``alpha``.

    The sign of the accuracy change alone never decides: with p >= alpha it is noise.
    """
    if test.pvalue >= alpha:
        return NO_CHANGE
    return BETTER if test.c > test.b else WORSE


def paired_bootstrap(
    base_correct: npt.NDArray[np.bool_],
    new_correct: npt.NDArray[np.bool_],
    *,
    seed: int = 0,
    resamples: int = 2000,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile interval of the accuracy change (new - base), resampling images in pairs.

    Args:
        base_correct: ``[N]`` the base model's right/wrong per image.
        new_correct: ``[N]`` the new model's, image for image.
        seed: The resampling seed (the same inputs give the same interval).
        resamples: Bootstrap resamples.
        level: Confidence level.

    Returns:
        ``(low, high)`` of the change in accuracy, as fractions.
    """
    from scipy.stats import bootstrap

    diff = new_correct.astype(np.float64) - base_correct.astype(np.float64)
    if np.all(diff == diff[0]):  # no variation: the interval is the point
        return float(diff[0]), float(diff[0])
    result = bootstrap(
        (diff,),
        np.mean,
        n_resamples=resamples,
        confidence_level=level,
        method="percentile",
        vectorized=True,
        batch=200,
        rng=np.random.default_rng(seed),
    )
    interval = result.confidence_interval
    return float(interval.low), float(interval.high)


@dataclass(frozen=True)
class ClassChange:
    """One digit's recall at both sides, with the images behind the change."""

    digit: int
    count: int
    base_recall: float
    new_recall: float
    newly_wrong: int
    newly_right: int


def per_class(
    labels: npt.NDArray[np.integer], base: npt.NDArray[np.integer], new: npt.NDArray[np.integer]
) -> list[ClassChange]:
    """Recall of each digit at both sides and the flips behind the difference.

    Args:
        labels: ``[N]`` true digits.
        base: ``[N]`` the base model's predicted digits.
        new: ``[N]`` the new model's.

    Returns:
        One row per digit 0-9.
    """
    rows = []
    for digit in range(NUM_CLASSES):
        mask = labels == digit
        n = int(mask.sum())
        base_right, new_right = base[mask] == digit, new[mask] == digit
        rows.append(
            ClassChange(
                digit=digit,
                count=n,
                base_recall=float(base_right.mean()) if n else 0.0,
                new_recall=float(new_right.mean()) if n else 0.0,
                newly_wrong=int(np.sum(base_right & ~new_right)),
                newly_right=int(np.sum(~base_right & new_right)),
            )
        )
    return rows
