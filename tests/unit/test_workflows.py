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


def test_ci_jobs_have_room_for_the_suite() -> None:
    """CI's own budget for .ci/run is 90 minutes: the workflow must not kill it sooner."""
    import yaml

    jobs = yaml.safe_load((PROJECT_ROOT / ".github/workflows/ci.yml").read_text())["jobs"]
    assert jobs["test"]["timeout-minutes"] >= 90


CI_RUN = PROJECT_ROOT / ".ci/run"


def _as_root(command: str, tmp_path: Path, uid: str | None) -> str:
    """Run ``as_root COMMAND`` from .ci/run, as root or (uid given) as a user with sudo."""
    helper = CI_RUN.read_text().split("as_root() {", 1)[1].split("\n}\n", 1)[0]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    path = "/usr/bin:/bin"
    if uid is not None:  # what a GitHub runner has: a non-root id, and sudo on PATH
        (bin_dir / "id").write_text(f"#!/bin/sh\necho {uid}\n")
        (bin_dir / "sudo").write_text('#!/bin/sh\necho "sudo $*"\n')
        for stub in bin_dir.iterdir():
            stub.chmod(0o755)
        path = f"{bin_dir}:{path}"
    script = f"as_root() {{{helper}\n}}\nas_root {command}\n"
    result = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, check=True, env={"PATH": path}
    )
    return result.stdout.strip()


def test_ci_installs_through_sudo_when_not_root(tmp_path: Path) -> None:
    assert _as_root("echo apt-get", tmp_path, uid="1001") == "sudo -n echo apt-get"
    if subprocess.run(["id", "-u"], capture_output=True, text=True).stdout.strip() == "0":
        assert _as_root("echo apt-get", tmp_path, uid=None) == "apt-get"
    # Every system command in .ci/run goes through as_root.
    for line in CI_RUN.read_text().splitlines():
        code = line.split("#")[0]
        if any(word in code for word in ("apt-get", "dpkg", "systemctl")):
            assert "as_root" in code, f".ci/run calls a system command directly: {line.strip()}"
