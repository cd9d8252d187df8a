"""Run each stage's ``main`` inside a directory laid out like the repository."""

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
