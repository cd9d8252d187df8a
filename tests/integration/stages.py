"""Run each stage's ``main`` inside a directory laid out like the repository."""

from pathlib import Path
from typing import Any

from mnist_pipeline import evaluate, preprocess, register, train


def run_preprocess(w: Path) -> None:
    preprocess.main(
        w / "params.yaml", w / "data/raw/mnist.npz", w / "data/prepared", w / "reports/data.json"
    )


def run_train(w: Path) -> None:
    train.main(
        w / "params.yaml",
        w / "data/prepared",
        w / "models/mnist",
        w / "reports/train",
        w / "models/mnist_int8.tflite",
    )


def run_evaluate(w: Path) -> None:
    evaluate.main(
        w / "params.yaml",
        w / "data/prepared",
        w / "models/mnist",
        w / "reports/metrics.json",
        w / "reports/plots/confusion.json",
        w / "reports/plots/mistakes.png",
        w / "models/mnist_int8.tflite",
        w / "reports/compression.json",
    )


def run_register(w: Path) -> dict[str, Any]:
    return register.main(
        w / "params.yaml",
        w / "reports/metrics.json",
        w / "models/mnist",
        w / "data/prepared",
        w / "reports/model_card.md",
    )
