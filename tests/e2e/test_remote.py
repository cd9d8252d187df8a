"""One S3 remote for data, models and the run-cache: push from one clone, pull into another.

A real S3 API (``moto_server`` with authentication) on a loopback port; the commands are the
README's (``make remote``, ``make push``, ``make pull``, ``make serve``) and the pull-request
workflow's own shell step.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support import PROJECT_ROOT, mnist
from tests.support.project_repo import (
    attempt,
    copy_repo,
    run,
    set_params,
    stages_run,
    user_clone,
)
from tests.support.servers import S3, CutProxy, s3_server, serve_and_predict

pytestmark = [pytest.mark.slow, pytest.mark.s3, pytest.mark.xdist_group("s3-remote")]


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3]:
    """The S3 API of this module's remotes (each test under its own prefix), with credentials."""
    with s3_server(tmp_path_factory.mktemp("s3")) as server:
        yield server


def make(repo: Path, target: str, s3: S3, *args: str, secret: str | None = None) -> str:
    return run(["make", "--no-print-directory", target, *args], repo, **s3.env(secret))


def make_remote(repo: Path, s3: S3, prefix: str, endpoint: str | None = None) -> None:
    url = f"URL=s3://{s3.bucket}/{prefix}"
    make(repo, "remote", s3, url, f"ENDPOINT={endpoint or s3.endpoint}")


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory, s3: S3, baseline: Path) -> Path:
    """A repository whose tiny pipeline ran, was committed and pushed to the remote."""
    repo = copy_repo(baseline, tmp_path_factory.mktemp("origin") / "origin")
    (repo / ".venv").symlink_to(PROJECT_ROOT / ".venv")
    for watched in ("requirements.lock", "pyproject.toml"):  # older than the venv's stamp
        os.utime(repo / watched, (0, 0))
    make_remote(repo, s3, "store")
    pushed = make(repo, "push", s3)
    assert "run-cache output objects pushed" in pushed  # the git-tracked metrics and plots
    return repo


def tree(repo: Path, *dirs: str) -> dict[str, str]:
    """sha256 of every file under ``dirs``, by relative path."""
    return {
        str(path.relative_to(repo)): hashlib.sha256(path.read_bytes()).hexdigest()
        for d in dirs
        for path in sorted((repo / d).rglob("*"))
        if path.is_file() and path.name != ".gitignore"
    }


def cache_is_sound(repo: Path) -> None:
    """Every object in the DVC cache hashes to its name: no half-written file was kept."""
    for path in (repo / ".dvc/cache/files/md5").glob("*/*"):
        name = path.parent.name + path.name.removesuffix(".dir")
        if re.fullmatch(r"[0-9a-f]{32}", name):
            assert hashlib.md5(path.read_bytes()).hexdigest() == name, path  # noqa: S324


def test_a_fresh_clone_pulls_and_serves_without_training(
    origin: Path, s3: S3, tmp_path: Path
) -> None:
    clone = user_clone(origin, tmp_path / "clone")
    make_remote(clone, s3, "store")
    # The remote lives in the uncommitted .dvc/config.local, without any credentials.
    assert "remote" not in (clone / ".dvc/config").read_text()
    local = (clone / ".dvc/config.local").read_text()
    assert f"s3://{s3.bucket}/store" in local
    assert s3.secret not in local
    assert s3.key not in local
    assert run(["git", "status", "--porcelain"], clone, stdout_only=True) == ""

    make(clone, "pull", s3)
    assert tree(clone, "data", "models") == tree(origin, "data", "models")
    status = run(["dvc", "status", "--json"], clone, stdout_only=True)
    # register is always_changed by design (its effect lives in the MLflow store): nothing else.
    assert json.loads(status) == {"register": ["always changed"]}
    output = run(["dvc", "repro"], clone)
    assert stages_run(output) == ["register"]
    assert run(["git", "status", "--porcelain"], clone, stdout_only=True) == ""

    answer = serve_and_predict(clone)
    assert len(answer["predictions"]) == 1  # type: ignore[arg-type]


def workflow_step(name_starts: str) -> str:
    """The shell of one step of the pull-request workflow, as GitHub would run it."""
    workflow = yaml.safe_load((PROJECT_ROOT / ".github/workflows/pr-report.yml").read_text())
    [step] = [s for s in workflow["jobs"]["report"]["steps"]
              if s.get("name", "").startswith(name_starts)]  # fmt: skip
    return str(step["run"])


def test_the_pull_request_workflow_restores_an_unchanged_pipeline(
    origin: Path, s3: S3, tmp_path: Path
) -> None:
    """A pull request that changes params: its first CI run trains, a rerun restores."""
    script = workflow_step("Reproduce")
    branch = user_clone(origin, tmp_path / "author")
    set_params(branch, train={"epochs": 2})  # dvc.lock not updated: CI has to reproduce
    run(["git", "commit", "-qam", "two epochs"], branch)
    env = {
        **s3.env(),
        "DVC_REMOTE_URL": f"s3://{s3.bucket}/store",
        "DVC_REMOTE_ENDPOINT": s3.endpoint,
    }
    first = run(["bash", "-eo", "pipefail", "-c", script], branch, **env)
    assert stages_run(first) == ["train", "evaluate", "reference", "register"]

    rerun = user_clone(branch, tmp_path / "ci-rerun")
    second = run(["bash", "-eo", "pipefail", "-c", script], rerun, **env)
    assert stages_run(second) == ["register"]  # always_changed; everything else restored
    assert "Stage 'train' is cached - skipping run, checking out outputs" in second
    assert tree(rerun, "models") == tree(branch, "models")

    # Without the repository variable (or without its secrets, as on a fork) it reproduces
    # without any remote, as before.
    no_remote = {**env, "DVC_REMOTE_URL": "", "AWS_ACCESS_KEY_ID": ""}
    fork = user_clone(origin, tmp_path / "fork")
    plain = run(["bash", "-eo", "pipefail", "-c", script], fork, **no_remote)
    assert "no DVC remote" in plain
    assert not (fork / ".dvc/config.local").exists()


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The single line ``mnist remote`` printed for a failure (and no traceback)."""
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("mnist remote ")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_faults_are_one_line_and_the_same_command_succeeds_after(
    origin: Path, s3: S3, tmp_path: Path
) -> None:
    proxy = CutProxy(int(s3.endpoint.rsplit(":", 1)[1]))
    pusher = user_clone(origin, tmp_path / "pusher")
    run(["dvc", "cache", "dir", "--local", str(origin / ".dvc/cache")], pusher)
    run(["dvc", "checkout"], pusher)
    make_remote(pusher, s3, "faults", proxy.endpoint)
    named = f"remote 'storage' (s3://{s3.bucket}/faults at {proxy.endpoint})"
    remote_cmd = mnist("remote")
    # What is tested is the line a failure gives, not botocore's backoff before it: one attempt
    # per request (a user's default retries only make the same line come later).
    fail_fast = {"AWS_MAX_ATTEMPTS": "1", "AWS_RETRY_MODE": "standard"}

    # The S3 server goes away after 3 MB of a push.
    proxy.cut_after(3_000_000)
    line = one_line(attempt([*remote_cmd, "push"], pusher, **s3.env(), **fail_fast))
    assert proxy.is_down
    assert line.startswith(f"mnist remote push: error: push to {named}: ")
    proxy.restore()
    make(pusher, "push", s3)

    # ... and after 3 MB of a pull into a fresh clone: nothing half-written is kept.
    puller = user_clone(origin, tmp_path / "puller")
    make_remote(puller, s3, "faults", proxy.endpoint)
    proxy.cut_after(3_000_000)
    line = one_line(attempt([*remote_cmd, "pull"], puller, **s3.env(), **fail_fast))
    assert line.startswith(f"mnist remote pull: error: pull from {named}: ")
    cache_is_sound(puller)
    # Down from the start: it says so.
    line = one_line(attempt([*remote_cmd, "pull"], puller, **s3.env(), **fail_fast))
    assert "the server cannot be reached" in line
    proxy.restore()
    make(puller, "pull", s3)
    cache_is_sound(puller)
    assert tree(puller, "data", "models") == tree(origin, "data", "models")

    # Wrong credentials: refused, one line naming the remote, nothing pulled or pushed.
    line = one_line(attempt([*remote_cmd, "push"], pusher, **s3.env(secret="wrong"), **fail_fast))  # noqa: S106
    assert line.startswith(f"mnist remote push: error: push to {named}: the server refused")
    missing = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    result = subprocess.run(
        [str(PROJECT_ROOT / ".venv/bin/mnist"), "remote", "pull"], cwd=puller,
        env={**missing, "AWS_CONFIG_FILE": "/none", "AWS_SHARED_CREDENTIALS_FILE": "/none",
             "AWS_EC2_METADATA_DISABLED": "true"},
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert "no credentials: export AWS_ACCESS_KEY_ID" in one_line(result)
    proxy.close()


def test_bad_remote_settings_are_refused_before_anything_is_written(repo: Path) -> None:
    for args, expected in (
        (["configure", "my-bucket/path"], "is not s3://BUCKET/PATH"),
        (["configure", "s3://b/p", "--endpoint", "127.0.0.1:9000"], "not an http:// or https://"),
        (["push"], "no DVC remote is configured: run make remote URL=s3://BUCKET/PATH"),
    ):
        result = attempt(mnist("remote", *args), repo)
        assert expected in one_line(result), args
        assert not (repo / ".dvc/config.local").exists()
