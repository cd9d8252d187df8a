"""The monitor grades a window by harm: drift alone is a ticket; a model wrong too often pages."""

from __future__ import annotations

import pytest

from mnist_contracts.drift import LiveQuality
from mnist_pipeline.ops.monitor import grade
from mnist_pipeline.params import MonitorParams
from mnist_pipeline.performance import Estimate

PARAMS = MonitorParams(min_live_accuracy=0.97, harm_margin=0.02)
REFERENCE = 0.993


def live(accuracy: float | None, labelled: int = 200) -> LiveQuality:
    return {
        "labelled": labelled, "accuracy": accuracy, "recall_per_class": {},
        "min_accuracy": 0.97, "min_labels": 50,
        "below_min": accuracy is not None and accuracy < 0.97,
    }  # fmt: skip


def estimated(accuracy: float) -> Estimate:
    return Estimate(accuracy, accuracy - 0.01, accuracy + 0.01, 500, 0.95)


@pytest.mark.parametrize(
    ("drift", "labels", "estimate", "level", "named"),
    [
        (False, None, 0.992, "none", "no drift"),
        # A new population of writers: drift, read as well as the reference.
        (True, None, 0.990, "ticket", "no estimated harm"),
        # Drift that costs accuracy beyond the margin pages before the floor is reached ...
        (True, None, 0.972, "page", "fell by more than monitor.harm_margin"),
        # ... and within it, is a ticket (thickened strokes: 1.5 points, true accuracy 97.2%).
        (True, None, 0.978, "ticket", "no estimated harm"),
        # Below the floor pages even without drift ...
        (False, None, 0.95, "page", "below monitor.min_live_accuracy"),
        # ... and labels, when enough came back, outrank the estimate (optimistic under shift).
        (True, 0.90, 0.990, "page", "live accuracy 0.9000 on 200 labelled events"),
        (True, 0.99, 0.990, "ticket", "no estimated harm"),
    ],
)
def test_each_window_gets_the_severity_its_harm_deserves(
    drift: bool, labels: float | None, estimate: float, level: str, named: str
) -> None:
    severity = grade(drift, live(labels), estimated(estimate), REFERENCE, PARAMS)
    assert severity["level"] == level
    assert severity["code"] == {"none": 0, "ticket": 1, "page": 2}[level]
    assert named in severity["reason"]
