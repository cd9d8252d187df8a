"""Benchmark the pipeline: one cold ``dvc repro`` of the whole graph, then a no-op one.

Clones the committed project into a temporary directory (so the DVC cache and run-cache are
empty: a cold run, fetch included) and times one ``dvc repro`` there, as one process, what a user
waits for, with the peak resident memory of its processes; then a ``dvc repro`` with nothing
changed. Writes ``reports/bench_pipeline.json`` with the machine, the commit and when it ran; the
README's table is rendered from it (``make docs``).

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
    started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    # What a user waits for: one cold `dvc repro` of the whole graph, fetch included.
    cold_seconds, peak_mib, cold_output = run(["dvc", "repro"], repo, env)
    # evaluate may be skipped: its outputs are all in git, and the retrained model is the same
    # bytes, so DVC finds it unchanged. Everything with a cached output must have run.
    ran = re.findall(r"Running stage '(\w+)'", cold_output)
    if not {"fetch", "preprocess", "train", "reference", "register"} <= set(ran):
        raise SystemExit(f"bench: the cold repro ran only {ran}")
    noop_seconds, _, noop_output = run(["dvc", "repro"], repo, env)
    rerun = re.findall(r"Running stage '(\w+)'", noop_output)
    if rerun != ["register"]:  # register is always_changed: it checks the store, a no-op here
        raise SystemExit(f"bench: the second dvc repro re-ran {rerun}")
    clean = subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True,
                           text=True, check=True).stdout  # fmt: skip
    metrics = json.loads((repo / "reports/metrics.json").read_text())["test"]
    train = train_run_metrics(repo)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    report = {
        "machine": {"cores": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version()},
        "versions": {p: metadata.version(p) for p in ("tensorflow-cpu", "keras", "dvc", "mlflow")},
        "commit": subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True,
                                 text=True, check=True).stdout.strip(),
        "started_at": started_at,
        "params": {"arch": params["train"]["arch"], "epochs": params["train"]["epochs"],
                   "batch_size": params["train"]["batch_size"]},
        "cold_repro_seconds": round(cold_seconds, 1),
        "cold_repro_stages_run": ran,
        "cold_repro_peak_rss_mib": peak_mib,
        "noop_repro_seconds": round(noop_seconds, 2),
        "git_status_clean_after_repro": clean == "",
        "train_seconds": train.get("train_seconds"),
        "train_images_per_second": train.get("train_images_per_second"),
        "test_accuracy": metrics["accuracy"],
    }  # fmt: skip
    (ROOT / "reports").mkdir(exist_ok=True)
    (ROOT / "reports/bench_pipeline.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
