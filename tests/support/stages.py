"""Run each stage's ``main`` inside a directory laid out like the repository."""

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from mnist_pipeline.stages import evaluate, preprocess, register, train


def run_preprocess(w: Path) -> None:
    preprocess.main(w)


def run_train(w: Path) -> None:
    train.main(w)


def run_evaluate(w: Path) -> None:
    evaluate.main(w)


def run_register(w: Path) -> dict[str, Any]:
    return register.main(w)


def run_stage_process(w: Path, stage: str) -> None:
    """Run a stage in a fresh process, as ``dvc repro`` does.

    TensorFlow numbers the functions it traces within a process, so only a fresh process per
    stage gives the bytes a repro gives.
    """
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    cmd = [sys.executable, "-m", f"mnist_pipeline.stages.{stage}"]
    subprocess.run(cmd, cwd=w, env=env, check=True, capture_output=True)
