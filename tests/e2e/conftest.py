from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.project_repo import copy_project


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository with the project's pipeline, tiny params, one commit, no results."""
    return copy_project(tmp_path / "repo")
