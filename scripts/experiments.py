"""The seed's Runs 1 and 2, run as queued DVC experiments: ``reports/experiments.json``.

Runs 3 and 4 (the search, and the production candidates compared on evidence) are
``make candidates`` (:mod:`mnist_pipeline.ops.candidates`, ``reports/candidates.json``), which
``make experiments`` runs next.

Each run is ``dvc exp run --queue -n NAME -S ...`` against the committed workspace, then the
queue runs one at a time (``dvc exp run --run-all``), so every figure comes from the same
machine and commit. Test accuracy comes from each experiment's ``reports/metrics.json`` (``dvc
exp show``); training time, which varies run to run and so is no DVC output, from its MLflow run
(tag ``dvc.exp_name``). The default params' own row comes from the workspace's committed metrics
and the pipeline benchmark (``reports/bench_pipeline.json``). The README's tables are rendered
from the report (``make docs``).

Usage: ``make experiments`` (it trains three models here, then runs ``make candidates``).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT / "src"))

from mnist_pipeline.ops.seeds import accuracies  # noqa: E402 - one reader of `dvc exp show`

# name, what it tests, the -S overrides (the command a reader can run to reproduce it).
RUNS: list[tuple[str, str, list[str]]] = [
    ("run1-mlp-3ep", "1. baseline: an MLP, 3 epochs", ["train.arch=mlp", "train.epochs=3"]),
    ("run1b-mlp", "1b. baseline, 10 epochs", ["train.arch=mlp"]),
    (
        "run2b-no-aug-no-smoothing",
        "2b. the default without augmentation and label smoothing",
        ["train.augment.max_shift=0", "train.label_smoothing=0"],
    ),
]


def dvc(*args: str) -> str:
    """Run a DVC command in the repository; its output."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}
    result = subprocess.run(
        [str(BIN / "dvc"), *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"experiments: dvc {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result.stdout


def train_seconds() -> dict[str, float]:
    """Training wall time of each experiment's MLflow run, by experiment name (newest run)."""
    sys.path.insert(0, str(ROOT / "src"))
    from mlflow.tracking import MlflowClient

    from mnist_pipeline.tracking import resolve_store

    client = MlflowClient(tracking_uri=resolve_store(ROOT).uri)
    experiment = client.get_experiment_by_name("mnist-classifier")
    if experiment is None:
        return {}
    runs = client.search_runs([experiment.experiment_id], "metrics.train_seconds > 0",
                              order_by=["attributes.start_time ASC"])  # fmt: skip
    return {
        r.data.tags["dvc.exp_name"]: r.data.metrics["train_seconds"]
        for r in runs
        if "dvc.exp_name" in r.data.tags
    }


def run_queue(commit: str) -> None:
    """Queue every run against ``commit`` (the workspace's HEAD) and run them one at a time."""
    existing = accuracies(commit)
    for name, _, overrides in RUNS:
        if name in existing:  # a rerun replaces an older result of the same name
            dvc("exp", "remove", name)
        dvc("exp", "run", "--queue", "-n", name, *[a for o in overrides for a in ("-S", o)])
    dvc("exp", "run", "--run-all", "--jobs", "1")


def collect(commit: str, started_at: str) -> dict[str, Any]:
    """The report: every run's accuracy and training time, the machine, the baseline commit."""
    found, seconds = accuracies(commit), train_seconds()
    default = json.loads((ROOT / "reports/metrics.json").read_text())["test"]["accuracy"]
    bench_file = ROOT / "reports/bench_pipeline.json"
    bench = json.loads(bench_file.read_text()) if bench_file.is_file() else {}
    rows: list[dict[str, Any]] = [
        {"name": "default", "description": "2. the default (params.yaml)", "overrides": [],
         "test_accuracy": default, "train_seconds": bench.get("train_seconds")},
    ]  # fmt: skip
    for name, description, overrides in RUNS:
        if name not in found:
            raise SystemExit(f"experiments: {name} has no metrics; see `dvc exp show`")
        rows.append({"name": name, "description": description, "overrides": overrides,
                     "test_accuracy": found[name], "train_seconds": seconds.get(name)})  # fmt: skip
    return {
        "machine": {"cores": os.cpu_count(), "platform": platform.platform()},
        "commit": commit,
        "started_at": started_at,
        "runs": rows,
    }


def main(argv: list[str]) -> None:
    """Queue, run and collect the experiments; write ``reports/experiments.json``.

    ``--collect COMMIT STARTED_AT`` only collects the experiments already run against COMMIT
    (after the report's other inputs, such as the pipeline benchmark, were refreshed).
    """
    if argv[:1] == ["--collect"]:
        commit, started_at = argv[1], argv[2]
    else:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, check=True).stdout.strip()  # fmt: skip
        started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        run_queue(commit)
    report = collect(commit, started_at)
    (ROOT / "reports/experiments.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
