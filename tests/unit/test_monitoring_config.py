"""The example Prometheus config and alert rules pass promtool (installed by .ci/run)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.support import PROJECT_ROOT
from tests.support.tools import require

PROMTOOL = shutil.which("promtool")


@pytest.fixture(autouse=True)
def _promtool() -> None:
    """Locally a missing promtool skips; in CI it fails (tests/support/tools.py)."""
    require("promtool")


def test_alert_rules_and_scrape_config_are_valid() -> None:
    assert PROMTOOL is not None, ".ci/run should have installed promtool"
    monitoring = PROJECT_ROOT / "monitoring"
    rules = subprocess.run(
        [PROMTOOL, "check", "rules", str(monitoring / "alerts.yml")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert "SUCCESS: 8 rules found" in rules.stdout
    config = subprocess.run(
        [PROMTOOL, "check", "config", str(monitoring / "prometheus.yml")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert config.returncode == 0, config.stdout + config.stderr


def test_drift_alert_fires_on_the_gauge(tmp_path: object) -> None:
    """promtool's rule unit test: the drift gauge at 1 for 15 minutes fires MnistInputDrift."""
    assert PROMTOOL is not None
    monitoring = PROJECT_ROOT / "monitoring"
    result = subprocess.run(
        [PROMTOOL, "test", "rules", str(monitoring / "alerts_test.yml")],
        capture_output=True, text=True, check=False, cwd=monitoring,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
