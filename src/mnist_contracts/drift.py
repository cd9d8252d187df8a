"""The drift report the monitor writes and the service reads (``reports/drift/drift.json``)."""

from __future__ import annotations

from typing import Any, TypedDict

NO_DRIFT, DRIFT, ERROR, TOO_FEW = 0, 1, 2, 3  # mnist-monitor's exit status
VERDICT_DRIFT, VERDICT_NO_DRIFT = "drift", "no drift"


class DriftReport(TypedDict):
    """The keys of ``drift.json``."""

    verdict: str
    drift: bool
    drifted_share: float
    columns: dict[str, dict[str, Any]]
    drifted_columns: list[str]
    model_version: str
    window: dict[str, str]
    sample_sizes: dict[str, int]
    generated_at: str
