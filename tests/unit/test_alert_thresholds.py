"""Alert thresholds derived from committed figures stay consistent with them."""

from __future__ import annotations

import json
import re

import yaml

from app.metrics import CONFIDENCE_BUCKETS
from mnist_pipeline.stages.evaluate import LOW_CONFIDENCE
from tests.support import PROJECT_ROOT


def rule(name: str) -> dict[str, object]:
    groups = yaml.safe_load((PROJECT_ROOT / "monitoring/alerts.yml").read_text())["groups"]
    return next(r for g in groups for r in g["rules"] if r.get("alert") == name)


def test_the_low_confidence_alert_sits_well_above_the_calibrated_in_distribution_share() -> None:
    expr = str(rule("MnistLowConfidence")["expr"])
    bucket = float(re.search(r'le="([0-9.]+)"', expr).group(1))  # type: ignore[union-attr]
    threshold = float(re.search(r">\s*([0-9.]+)\s*$", expr.strip()).group(1))  # type: ignore[union-attr]
    assert bucket == LOW_CONFIDENCE  # the share evaluate measures is the share the rule reads
    assert bucket in CONFIDENCE_BUCKETS  # ... and the service's histogram has that bucket
    metrics = json.loads((PROJECT_ROOT / "reports/metrics.json").read_text())
    share = metrics["calibration"]["low_confidence_share"]
    assert 0 < share < threshold / 3  # in-distribution traffic stays far below the alert
