"""Benchmark the pipeline: cold repro, no-op repro, each stage's wall time and peak memory.

Clones the committed project into a temporary directory (so the DVC cache and run-cache are
empty: a cold run, fetch included), reproduces it stage by stage measuring wall time and the peak
resident memory of each stage's processes, then times a ``dvc repro`` with nothing changed.
Writes ``reports/bench_pipeline.json`` and ``reports/bench_pipeline.md``.

Usage: ``make bench``. Not part of the tests (it trains the full model: about 5 minutes on 2 cores).
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

# Runs one command and prints its children's peak RSS (KiB on Linux), so each stage is measured
# in a process of its own.
MEASURE = (
    "import resource, subprocess, sys\n"
    "code = subprocess.run(sys.argv[1:]).returncode\n"
    "print('PEAK_RSS_KIB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, flush=True)\n"
    "sys.exit(code)\n"
)


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, int, str]:
    """Run ``cmd``; return wall seconds, peak RSS in MiB, and its output."""
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, *cmd], cwd=cwd, env=env, capture_output=True, text=True
    )
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"bench: {' '.join(cmd)} failed:\n{result.stderr[-2000:]}")
    peak = next(
        int(line.split()[1])
        for line in result.stdout.splitlines()
        if line.startswith("PEAK_RSS_KIB")
    )
    return seconds, peak // 1024, result.stdout + result.stderr


def train_run_metrics(repo: Path) -> dict[str, float]:
    """Training wall time and images/s: run-to-run figures, kept in the MLflow run only."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("mnist-classifier")
    runs = client.search_runs([experiment.experiment_id], "metrics.train_seconds > 0")
    return dict(runs[0].data.metrics) if runs else {}


def main() -> None:
    """Run the benchmark and write the reports."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    repo = tmp / "repo"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(repo)], check=True)
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(repo / "src"),
        "DVC_NO_ANALYTICS": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    env.pop("MLFLOW_TRACKING_URI", None)  # the clone's own embedded store
    stages = list(yaml.safe_load((repo / "dvc.yaml").read_text())["stages"])
    results: list[dict[str, Any]] = []
    for stage in stages:
        seconds, peak_mib, _ = run(["dvc", "repro", "--single-item", stage], repo, env)
        results.append({"stage": stage, "seconds": round(seconds, 1), "peak_rss_mib": peak_mib})
        print(f"{stage:12s} {seconds:7.1f} s  {peak_mib:6d} MiB", flush=True)
    noop_seconds, _, noop_output = run(["dvc", "repro"], repo, env)
    rerun = re.findall(r"Running stage '(\w+)'", noop_output)
    if rerun != ["register"]:  # register is always_changed: it checks the store, a no-op here
        raise SystemExit(f"bench: the second dvc repro re-ran {rerun}")
    metrics = json.loads((repo / "reports/metrics.json").read_text())["test"]
    train = train_run_metrics(repo)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    report = {
        "machine": {"cores": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version()},
        "versions": {p: metadata.version(p) for p in ("tensorflow-cpu", "keras", "dvc", "mlflow")},
        "commit": subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True,
                                 text=True, check=True).stdout.strip(),
        "params": {"arch": params["train"]["arch"], "epochs": params["train"]["epochs"],
                   "batch_size": params["train"]["batch_size"]},
        "cold_repro_seconds": round(sum(r["seconds"] for r in results), 1),
        "noop_repro_seconds": round(noop_seconds, 2),
        "stages": results,
        "train_images_per_second": train.get("train_images_per_second"),
        "test_accuracy": metrics["accuracy"],
    }  # fmt: skip
    lines = [
        "# Pipeline benchmark",
        "",
        f"{report['machine']['cores']} cores; "
        + ", ".join(f"{name} {version}" for name, version in report["versions"].items())
        + f"; commit {report['commit'][:10]}; {report['params']}.",
        "",
        "| stage | wall s | peak RSS MiB |",
        "|---|---|---|",
        *[f"| {r['stage']} | {r['seconds']} | {r['peak_rss_mib']} |" for r in results],
        f"| **cold `dvc repro`** | **{report['cold_repro_seconds']}** | |",
        f"| no-op `dvc repro` | {report['noop_repro_seconds']} | |",
        "",
        f"Test accuracy {metrics['accuracy']:.4f}; training {report['train_images_per_second']} "
        "images/s.",
        "",
    ]
    (ROOT / "reports").mkdir(exist_ok=True)
    (ROOT / "reports/bench_pipeline.json").write_text(json.dumps(report, indent=2) + "\n")
    (ROOT / "reports/bench_pipeline.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
