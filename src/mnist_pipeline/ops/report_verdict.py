"""The report's decision: paired statistics over the per-image predictions of both sides.

Each side's per-image record is its committed ``reports/plots/confusion.json`` (one
``{"actual", "predicted"}`` row per test image, in test-set order, written by ``evaluate``), so
any two commits compare without retraining. Sections: the accuracy change with a paired
bootstrap 95% interval, McNemar's exact test with the verdict at ``report.alpha``, recall per
digit with the flips behind it, calibration, and the flip galleries.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import matplotlib as mpl

mpl.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import numpy.typing as npt

from mnist_pipeline import markdown
from mnist_pipeline.compare import (
    McNemar,
    mcnemar_exact,
    paired_bootstrap,
    per_class,
    verdict,
)
from mnist_pipeline.figures import save_png

PREDICTIONS_FILE = "reports/plots/confusion.json"


@dataclass(frozen=True)
class Predictions:
    """One side's per-image record: true and predicted digit of every test image, in order."""

    labels: npt.NDArray[np.int64]
    predicted: npt.NDArray[np.int64]

    @classmethod
    def parse(cls, text: str | None) -> Predictions | None:
        """From ``confusion.json``'s text; None when absent or unreadable."""
        if text is None:
            return None
        try:
            rows = json.loads(text)
            labels = np.array([int(r["actual"]) for r in rows], np.int64)
            predicted = np.array([int(r["predicted"]) for r in rows], np.int64)
        except (ValueError, TypeError, KeyError):
            return None
        return cls(labels, predicted)

    @property
    def correct(self) -> npt.NDArray[np.bool_]:
        """Whether each image was classified right."""
        return np.asarray(self.labels == self.predicted, dtype=np.bool_)


@dataclass(frozen=True)
class Decision:
    """What the statistics say, for the verdict line and the sections."""

    verdict: str
    test: McNemar
    interval: tuple[float, float]
    change: float
    alpha: float

    def line(self) -> str:
        """The one-line verdict."""
        low, high = self.interval
        return (
            f"**{self.verdict}**: accuracy {100 * self.change:+.2f} points "
            f"(95% CI {100 * low:+.2f} to {100 * high:+.2f}); McNemar's exact test on "
            f"{self.test.b + self.test.c} images that changed: newly wrong {self.test.b}, "
            f"newly right {self.test.c}, p = {self.test.pvalue:.3g} (alpha {self.alpha})"
        )


def decide(base: Predictions, new: Predictions, alpha: float) -> Decision:
    """The paired comparison of two sides over the same images.

    Args:
        base: The base side's record.
        new: The compared side's record (same images, same order).
        alpha: Significance level for the verdict.

    Returns:
        The decision.
    """
    test = mcnemar_exact(base.correct, new.correct)
    change = float(new.correct.mean() - base.correct.mean())
    interval = paired_bootstrap(base.correct, new.correct)
    return Decision(verdict(test, alpha), test, interval, change, alpha)


def recall_table(base: Predictions, new: Predictions) -> str:
    """Markdown: recall per digit at both sides, the change and the flips behind it."""
    headers = ("digit", "images", "base recall", "new recall", "change", "newly wrong",
               "newly right")  # fmt: skip
    rows = [
        (row.digit, row.count, f"{100 * row.base_recall:.2f}%", f"{100 * row.new_recall:.2f}%",
         f"{100 * (row.new_recall - row.base_recall):+.2f}", row.newly_wrong, row.newly_right)
        for row in per_class(new.labels, base.predicted, new.predicted)
    ]  # fmt: skip
    return markdown.table(headers, rows)


def draw_flips(
    images: npt.NDArray[np.uint8],
    base: Predictions,
    new: Predictions,
    which: npt.NDArray[np.int64],
    title: str,
    path: Path,
) -> None:
    """A grid of test images with the true digit and both sides' answers.

    Args:
        images: The test images ``uint8[N,28,28]`` (same order as the records).
        base: The base side's record.
        new: The compared side's record.
        which: Indices to draw (already capped).
        title: The figure's title.
        path: Destination PNG (written atomically).
    """
    cols = max(1, min(8, len(which)))
    rows = max(1, -(-len(which) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.5 * cols, 1.8 * rows + 0.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, which, strict=False):
        ax.imshow(images[i], cmap="gray", vmin=0, vmax=255)
        ax.set_title(
            f"#{i} true {new.labels[i]}\nbase {base.predicted[i]} → new {new.predicted[i]}",
            fontsize=8,
        )
    if len(which) == 0:
        axes.flat[0].text(0.5, 0.5, "none", ha="center", va="center")
    fig.suptitle(title, fontsize=10)
    save_png(fig, path, dpi=90)


def flip_indices(
    base: Predictions, new: Predictions, cap: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Indices newly wrong and newly right, in test-set order, each capped at ``cap``."""
    newly_wrong = np.flatnonzero(base.correct & ~new.correct)
    newly_right = np.flatnonzero(~base.correct & new.correct)
    return newly_wrong[:cap], newly_right[:cap]
