"""Benchmark multi-worker training: the step time of 1 worker against N on this machine.

Builds a workspace from the first ``--images`` images of ``data/raw/mnist.npz`` (run
``make repro`` first) with the default params but ``--epochs`` epochs, then trains it twice:

1. the train stage on one machine (``model.fit``);
2. ``mnist train-distributed --workers N`` (``MultiWorkerMirroredStrategy`` on loopback).

For each: wall time of the command, the steady-state time per step (the last epoch, which pays no
tracing), images per second in that epoch, and the test accuracy of the exported model. On one
machine the workers share its cores, so N workers are not faster here; the figure says what the
code path costs, not what a cluster gains.

Writes ``reports/bench_distributed.json``. Usage: ``make bench-distributed [WORKERS=2]``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from provenance import provenance

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "reports" / "bench_distributed.json"


def workspace(path: Path, images: int, epochs: int) -> Path:
    """A committed repository with the first ``images`` training images, prepared."""
    raw = np.load(ROOT / "data/raw/mnist.npz")
    path.mkdir(parents=True)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["preprocess"].update({"val_size": 1000, "limit": None, "feedback": False})
    params["train"]["epochs"] = epochs
    (path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (path / "data/raw").mkdir(parents=True)
    np.savez(
        path / "data/raw/mnist.npz",
        x_train=raw["x_train"][:images], y_train=raw["y_train"][:images],
        x_test=raw["x_test"], y_test=raw["y_test"],
    )  # fmt: skip
    for cmd in (["git", "init", "-q", "-b", "main"], ["git", "add", "params.yaml"]):
        subprocess.run(cmd, cwd=path, check=True)
    subprocess.run(
        ["git", "-c", "user.name=b", "-c", "user.email=b@example.invalid", "commit", "-qm", "b"],
        cwd=path, check=True,
    )  # fmt: skip
    run([sys.executable, "-m", "mnist_pipeline.stages.preprocess"], path)
    return path


def run(cmd: list[str], cwd: Path) -> tuple[str, float]:
    """Run ``cmd`` in ``cwd``; return its output and wall seconds (exit on failure)."""
    env = {**os.environ, "DVC_ROOT": str(cwd), "TF_CPP_MIN_LOG_LEVEL": "2"}
    started = time.perf_counter()
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result.stdout + result.stderr, seconds


def accuracy(path: Path) -> float:
    """Test accuracy of ``path``'s exported model on the 10,000 official test images."""
    sys.path.insert(0, str(ROOT / "src"))
    from mnist_pipeline import saved_model

    test = np.load(path / "data/prepared/test.npz")
    probs = saved_model.load(path / "models/mnist")(test["x"])
    return round(float(np.mean(np.argmax(probs, axis=1) == test["y"])), 4)


def measure(path: Path, cmd: list[str], step_pattern: str, images: int) -> dict[str, Any]:
    """Train with ``cmd``; read the last epoch's time per step from its output."""
    output, seconds = run(cmd, path)
    steps = [float(ms) for ms in re.findall(step_pattern, output)]
    if not steps:
        sys.exit(f"no step time found in the output of {' '.join(cmd)}:\n{output[-2000:]}")
    batch = yaml.safe_load((path / "params.yaml").read_text())["train"]["batch_size"]
    return {
        "command": " ".join(cmd[2:]) if cmd[1] == "-m" else " ".join(cmd),
        "wall_s": round(seconds, 1),
        "last_epoch_ms_per_step": steps[-1],
        "last_epoch_images_per_s": round(1000 * batch / steps[-1], 1),
        "test_accuracy": accuracy(path),
        "training_images": images - 1000,
    }


def main() -> None:
    """Train once on one worker and once on N; write ``reports/bench_distributed.json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--images", type=int, default=21000)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    if not (ROOT / "data/raw/mnist.npz").is_file():
        sys.exit("data/raw/mnist.npz is missing: run `make repro` first")
    with tempfile.TemporaryDirectory(prefix="bench-distributed-") as tmp:
        one = workspace(Path(tmp) / "one", args.images, args.epochs)
        many = workspace(Path(tmp) / "many", args.images, args.epochs)
        single = measure(
            one, [sys.executable, "-m", "mnist_pipeline.stages.train"],
            r" - (\d+(?:\.\d+)?)ms/step", args.images,
        )  # fmt: skip
        distributed = measure(
            many,
            [sys.executable, "-m", "mnist_pipeline.commands", "train-distributed",
             "--workers", str(args.workers)],
            r"\[worker 0\] .*epoch \d+: .*; (\d+(?:\.\d+)?) ms/step", args.images,
        )  # fmt: skip
    report = {
        **provenance(),
        "params": f"params.yaml with train.epochs={args.epochs}",
        "one_worker": single,
        f"{args.workers}_workers": distributed,
        "note": "workers share this machine's cores: the figure is the code path's cost",
    }
    OUT.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
