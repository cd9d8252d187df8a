"""``make seeds N=5``: how much test accuracy moves with the seed alone, for the current params.

Queues one DVC experiment per seed (``dvc exp run --queue -n seed-K -S seed=K``) against the
committed workspace, runs the queue one at a time, and writes ``reports/seeds.json``: each
seed's test accuracy, their mean and sample standard deviation, and the commit they ran at.
``mnist report`` shows that spread and says when a change lies inside it. Experiments never
move the registry's ``production`` alias (see ``register.promote_branch``).
"""

from __future__ import annotations

import csv
import io
import json
import statistics
import subprocess
from pathlib import Path
from typing import Any

from tqdm import tqdm

from mnist_contracts import paths
from mnist_pipeline.atomic import write_text
from mnist_pipeline.errors import PipelineError
from mnist_pipeline.ops.tools import tool

SEEDS_FILE = paths.REPORTS_DIR / "seeds.json"


def _dvc(*args: str) -> str:
    result = subprocess.run([tool("dvc"), *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise PipelineError(f"dvc {' '.join(args)} failed: {result.stderr.strip()[-400:]}")
    return result.stdout


def accuracies(rev: str) -> dict[str, float]:
    """Test accuracy of every experiment based on commit ``rev``, by experiment name."""
    table = _dvc("exp", "show", "--csv", "--no-pager", "--rev", rev)
    return {
        row["Experiment"]: float(row["test.accuracy"])
        for row in csv.DictReader(io.StringIO(table))
        if row.get("Experiment") and row.get("test.accuracy")
    }


def summarise(seeds: list[int], found: dict[str, float], commit: str) -> dict[str, Any]:
    """The report: per-seed accuracy, mean, sample standard deviation, range."""
    values = [found[f"seed-{s}"] for s in seeds]
    return {
        "commit": commit,
        "seeds": seeds,
        "test_accuracy": values,
        "mean": round(statistics.fmean(values), 6),
        "std": round(statistics.stdev(values), 6) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
    }


def run_seeds(n: int) -> dict[str, Any]:
    """Queue, run and summarise seeds 1..``n`` of HEAD; write ``reports/seeds.json``.

    Args:
        n: How many seeds (at least 2).

    Returns:
        The summary written.

    Raises:
        PipelineError: Too few seeds, uncommitted changes, or an experiment without metrics.
    """
    if n < 2:
        raise PipelineError(f"--n {n}: a spread needs at least 2 seeds")
    status = subprocess.run(
        [tool("git"), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True, text=True, check=False,
    ).stdout  # fmt: skip
    if status.strip():
        raise PipelineError("uncommitted changes: commit them first (seeds run against HEAD)")
    commit = subprocess.run(
        [tool("git"), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    seeds = list(range(1, n + 1))
    existing = accuracies(commit)
    queued = [s for s in seeds if f"seed-{s}" not in existing]  # done ones: same bytes again
    # One queued experiment at a time (what `--run-all --jobs 1` does), so the bar moves per seed.
    for seed in tqdm(queued, desc="mnist seeds", unit="seed", disable=None, leave=False):
        _dvc("exp", "run", "--queue", "-n", f"seed-{seed}", "-S", f"seed={seed}")
        _dvc("exp", "run", "--run-all", "--jobs", "1")
    found = accuracies(commit)
    missing = [s for s in seeds if f"seed-{s}" not in found]
    if missing:
        raise PipelineError(f"seeds {missing} have no metrics; see `dvc exp show`")
    report = summarise(seeds, found, commit)
    write_text(Path(SEEDS_FILE), json.dumps(report, indent=2) + "\n")
    return report
