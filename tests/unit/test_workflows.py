"""The GitHub workflows, checked offline: schema-valid, and no high-severity zizmor findings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support import PROJECT_ROOT

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


def zizmor(target: Path) -> subprocess.CompletedProcess[str]:
    # --no-exit-codes: findings do not change the exit code, so anything but 0 is a failed audit.
    return subprocess.run(
        [str(BIN / "zizmor"), "--offline", "--no-exit-codes", "--format", "json", str(target)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip


def high_findings(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The idents of zizmor's high-severity findings; a crashed or silent audit fails."""
    assert result.returncode == 0, f"zizmor failed: {result.stderr[-2000:]}"
    findings = json.loads(result.stdout)
    return [f["ident"] for f in findings if f["determinations"]["severity"] == "High"]


def test_zizmor_finds_nothing_high() -> None:
    result = zizmor(PROJECT_ROOT / ".github")
    for workflow in WORKFLOWS:  # it audited every workflow, not nothing
        assert f"completed {workflow}" in result.stderr, workflow.name
    assert not high_findings(result)


def test_the_zizmor_check_can_fail(tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match="zizmor failed"):
        high_findings(zizmor(tmp_path / "missing"))
    bad = tmp_path / ".github/workflows/bad.yml"
    bad.parent.mkdir(parents=True)
    bad.write_text(
        "on: pull_request_target\njobs:\n  x:\n    runs-on: ubuntu-24.04\n    steps:\n"
        "      - uses: actions/checkout@v4\n        with:\n"
        "          ref: ${{ github.event.pull_request.head.sha }}\n"
        "      - run: echo ${{ github.event.pull_request.title }}\n"
    )
    assert high_findings(zizmor(tmp_path / ".github"))


def test_actions_are_pinned_by_commit() -> None:
    for workflow in WORKFLOWS:
        for line in workflow.read_text().splitlines():
            if "uses:" in line:
                ref = line.split("uses:")[1].split("#")[0].strip()
                if ref.startswith("./.github/workflows/"):  # this repository's, same commit
                    continue
                assert len(ref.split("@")[1]) == 40, f"{workflow.name}: {ref} is not pinned"


def test_ci_runs_the_suite_as_parallel_tiers_each_with_a_timeout() -> None:
    """A hung job stops itself; the tiers together run every test (tests/unit/test_harness.py)."""
    import yaml

    jobs = yaml.safe_load((PROJECT_ROOT / ".github/workflows/ci.yml").read_text())["jobs"]
    assert {"lint", "fast", "tier"} <= set(jobs)
    called = yaml.safe_load((PROJECT_ROOT / ".github/workflows/deploy.yml").read_text())["jobs"]
    for name, job in {**jobs, **called}.items():
        if "uses" in job:  # a reusable workflow's call: its own jobs carry the timeouts
            continue
        assert 0 < job["timeout-minutes"] <= 90, name
    tiers = [entry["tier"] for entry in jobs["tier"]["strategy"]["matrix"]["include"]]
    assert tiers == ["slow", "docker", "stack", "browser-spark"]
    assert set(jobs["images"]["needs"]) == {"lint", "fast", "tier"}


def ci_jobs() -> dict[str, Any]:
    """ci.yml's jobs."""
    import yaml

    jobs: dict[str, Any] = yaml.safe_load((PROJECT_ROOT / ".github/workflows/ci.yml").read_text())[
        "jobs"
    ]
    return jobs


def pushed_images() -> set[str]:
    """The image names CI pushes (the images job's matrix)."""
    return {entry["name"] for entry in ci_jobs()["images"]["strategy"]["matrix"]["include"]}


def test_ci_pushes_four_images_by_commit_with_labels_sbom_and_provenance() -> None:
    job = ci_jobs()["images"]
    assert pushed_images() == {"mnist-api", "mnist-api-slim", "mnist-monitor", "mnist-pipeline"}
    assert job["if"] == "github.event_name == 'push' && github.ref == 'refs/heads/main'"
    path = next(s for s in job["steps"] if s.get("id") == "path")
    assert "${GITHUB_REPOSITORY,,}" in path["run"]  # lower case: OCI names must be
    build = next(s for s in job["steps"] if "build-push-action" in s.get("uses", ""))["with"]
    assert build["tags"] == "${{ steps.path.outputs.image }}:${{ github.sha }}"  # immutable
    assert "latest" not in build["tags"]
    labels = dict(line.split("=", 1) for line in build["labels"].splitlines())
    assert {"org.opencontainers.image.source", "org.opencontainers.image.revision",
            "org.opencontainers.image.created"} <= set(labels)  # fmt: skip
    assert labels["org.opencontainers.image.revision"] == "${{ github.sha }}"
    assert build["provenance"] == "mode=max"
    assert build["sbom"] is True
    assert "GIT_COMMIT=${{ github.sha }}" in build["build-args"]  # what /metadata names


def test_main_deploys_to_staging_then_production_behind_its_environment() -> None:
    import yaml

    jobs = ci_jobs()
    assert jobs["deploy-staging"]["needs"] == ["images"]
    assert jobs["deploy-production"]["needs"] == ["deploy-staging"]
    for name, environment in (("deploy-staging", "staging"), ("deploy-production", "production")):
        assert jobs[name]["uses"] == "./.github/workflows/deploy.yml"
        assert jobs[name]["with"]["environment"] == environment
        assert (PROJECT_ROOT / "kubernetes/overlays" / environment / "kustomization.yaml").is_file()
    deploy = yaml.safe_load((PROJECT_ROOT / ".github/workflows/deploy.yml").read_text())
    job = deploy["jobs"]["deploy"]
    assert job["environment"]["name"] == "${{ inputs.environment }}"  # its reviewers gate it
    steps = {step.get("name", step.get("uses", "")): step for step in job["steps"]}
    # No credentials: a notice, and every later step skipped.
    credentials = steps["Cluster credentials"]
    assert "::notice" in credentials["run"]
    assert 'echo "ready=false"' in credentials["run"]
    later = [
        s for s in job["steps"] if s is not credentials and "rollout undo" not in s.get("run", "")
    ]
    assert all("steps.cluster.outputs.ready == 'true'" in s["if"] for s in later)
    # Pinned by tag and digest, applied, waited for, smoke-tested; undone only after a rollout.
    runs = "\n".join(s.get("run", "") for s in job["steps"])
    for command in ("scripts/pin_images.py", "kubectl apply -k", "rollout status",
                    "scripts/smoke_test.py", "rollout undo"):  # fmt: skip
        assert command in runs, command
    undo = next(s for s in job["steps"] if "rollout undo" in s.get("run", ""))
    assert undo["if"] == (
        "failure() && (steps.rollout.outcome == 'failure' || steps.smoke.outcome == 'failure')"
    )


CI_RUN = PROJECT_ROOT / ".ci/machine"  # the script that installs system packages


def _as_root(command: str, tmp_path: Path, uid: str | None) -> str:
    """Run ``as_root COMMAND`` from .ci/machine, as root or (uid given) as a user with sudo."""
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
    # Every system command in .ci/machine goes through as_root.
    for line in CI_RUN.read_text().splitlines():
        code = line.split("#")[0]
        if any(word in code for word in ("apt-get", "dpkg", "systemctl")):
            assert "as_root" in code, f".ci/machine calls a system command directly: {line.strip()}"
