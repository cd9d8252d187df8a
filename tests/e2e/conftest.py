"""The e2e tests' repositories: a fresh copy of the project, or a private copy of one run of it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from filelock import FileLock

from tests.support.project_repo import FRONT_DOOR, commit_all, copy_project, copy_repo, run


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository with the project's pipeline, tiny params, one commit, no results."""
    return copy_project(tmp_path / "repo")


@pytest.fixture(scope="session")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny pipeline run once (``dvc repro``) and its results committed: read-only.

    Made once per test session and shared by every xdist worker (the first to need it builds it
    under a file lock in the session's common temporary directory): most e2e tests start from
    this state, and a full ``dvc repro`` is the most expensive thing they do. Tests use
    :func:`repo_after_repro`, a private copy.
    """
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # the session's directory, above each worker's own
    built, repo = shared / "baseline.done", shared / "baseline" / "repo"
    with FileLock(str(shared / "baseline.lock")):
        if not built.is_file():
            shutil.rmtree(repo.parent, ignore_errors=True)  # a build that failed part-way
            copy_project(repo, extra=FRONT_DOOR)
            (repo.parent / "repro.log").write_text(run(["dvc", "repro"], repo))
            commit_all(repo, "baseline run")
            built.touch()
    return repo


@pytest.fixture
def repo_after_repro(baseline: Path, tmp_path: Path) -> Path:
    """A private copy of :func:`baseline`: the tiny pipeline ran on main and its results are in git,
    with the run and the registered model in the copy's own embedded MLflow store."""
    return copy_repo(baseline, tmp_path / "repo")


@pytest.fixture
def baseline_output(baseline: Path) -> str:
    """What the baseline's first ``dvc repro`` printed (every stage ran, from nothing)."""
    return (baseline.parent / "repro.log").read_text()
