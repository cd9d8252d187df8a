"""The GitHub workflows, checked offline: schema-valid, and no high-severity zizmor findings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import PROJECT_ROOT

BIN = Path(sys.executable).parent
WORKFLOWS = sorted((PROJECT_ROOT / ".github/workflows").glob("*.yml"))


def test_there_are_ci_and_pr_report_workflows() -> None:
    assert {w.name for w in WORKFLOWS} >= {"ci.yml", "pr-report.yml"}


def test_workflows_match_the_github_schema() -> None:
    result = subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows",
         *map(str, WORKFLOWS)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_zizmor_finds_nothing_high() -> None:
    result = subprocess.run(
        [str(BIN / "zizmor"), "--offline", "--format", "json", str(PROJECT_ROOT / ".github")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    findings = json.loads(result.stdout or "[]")
    high = [f for f in findings if f["determinations"]["severity"] == "High"]
    assert not high, [f["ident"] for f in high]


def test_actions_are_pinned_by_commit() -> None:
    for workflow in WORKFLOWS:
        for line in workflow.read_text().splitlines():
            if "uses:" in line:
                ref = line.split("uses:")[1].split("#")[0].strip()
                assert len(ref.split("@")[1]) == 40, f"{workflow.name}: {ref} is not pinned"
