"""The drift report the monitor writes and the service reads (``reports/drift/drift.json``)."""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

NO_DRIFT, DRIFT, ERROR, TOO_FEW = 0, 1, 2, 3  # mnist monitor's exit status
VERDICT_DRIFT, VERDICT_NO_DRIFT = "drift", "no drift"


class LiveQuality(TypedDict):
    """How right the model was on the window's events whose true label came back."""

    labelled: int
    accuracy: float | None  # None: fewer than min_labels labelled events
    recall_per_class: dict[str, float | None]
    min_accuracy: float
    min_labels: int
    below_min: bool


# How bad the window is, by harm: drift alone is a ticket, a model that is (or is estimated to
# be) wrong too often is a page. The gauge mnist_monitor_severity carries the code.
SEVERITY_CODES = {"none": 0, "ticket": 1, "page": 2}


class Severity(TypedDict):
    """The monitor's grade of the window: ``level`` (none, ticket, page), its code, and why."""

    level: str
    code: int
    reason: str


class DriftReport(TypedDict):
    """The keys of ``drift.json``."""

    verdict: str
    drift: bool
    drifted_share: float
    columns: dict[str, dict[str, Any]]
    drifted_columns: list[str]
    model_version: str
    variants: NotRequired[dict[str, dict[str, int] | str]]
    window: dict[str, str]
    sample_sizes: dict[str, int]
    generated_at: str
    live: NotRequired[LiveQuality]
    # Accuracy estimated from the calibrated confidences, without labels (performance.py).
    estimated: NotRequired[dict[str, float | int]]
    severity: NotRequired[Severity]
