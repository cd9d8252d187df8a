"""Alert rules: thresholds derived from committed figures, a severity and a runbook each."""

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


def test_every_rule_is_a_page_or_a_ticket_with_a_runbook_that_exists() -> None:
    groups = yaml.safe_load((PROJECT_ROOT / "monitoring/alerts.yml").read_text())["groups"]
    rules = [r for g in groups for r in g["rules"]]
    index = (PROJECT_ROOT / "docs/runbooks/README.md").read_text()
    for rule in rules:
        assert rule["labels"]["severity"] in ("page", "ticket"), rule["alert"]
        page = PROJECT_ROOT / rule["annotations"]["runbook_url"]
        assert page.is_file(), rule["alert"]
        assert page.read_text().startswith(f"# {rule['alert']} ({rule['labels']['severity']})")
        assert f"| {rule['alert']} | {rule['labels']['severity']} |" in index
