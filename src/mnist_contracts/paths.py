"""Where every file lives, relative to the repository (or service) root: the one place.

Stages join these to a root (``root / paths.MODEL_DIR``); ``dvc.yaml`` names the same paths as
deps and outs, and ``tests/unit/test_paths.py`` checks each stage's entry in :data:`STAGES`
against it, so the two cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PARAMS_FILE = Path("params.yaml")
LOCK_FILE = Path("dvc.lock")

RAW_FILE = Path("data/raw/mnist.npz")
PREPARED_DIR = Path("data/prepared")
REFERENCE_DIR = Path("data/reference")
FEEDBACK_DIR = Path("data/feedback")  # labelled live events (mnist collect), DVC-tracked
FEEDBACK_FILE = FEEDBACK_DIR / "feedback.npz"
MODEL_DIR = Path("models/mnist")

REPORTS_DIR = Path("reports")
DATA_REPORT = REPORTS_DIR / "data.json"
TRAIN_LIVE_DIR = REPORTS_DIR / "train"
TRAIN_PLOTS_DIR = TRAIN_LIVE_DIR / "plots"
TRAIN_METRICS = TRAIN_LIVE_DIR / "metrics.json"
METRICS_FILE = REPORTS_DIR / "metrics.json"
SIZES_FILE = REPORTS_DIR / "compression.json"
CONFUSION_FILE = REPORTS_DIR / "plots/confusion.json"
MISTAKES_FILE = REPORTS_DIR / "plots/mistakes.png"
RELIABILITY_FILE = REPORTS_DIR / "plots/reliability.png"
ROBUSTNESS_FILE = REPORTS_DIR / "robustness.json"
MODEL_CARD_FILE = REPORTS_DIR / "model_card.md"
DRIFT_DIR = REPORTS_DIR / "drift"
DRIFT_REPORT = DRIFT_DIR / "drift.json"

# The service's writable state (never in git).
STATE_DIR = Path("var")
PREDICTION_LOG = STATE_DIR / "predictions.db"


def split_file(split: str, prepared: Path = PREPARED_DIR) -> Path:
    """``data/prepared/{train,val,test}.npz``."""
    return prepared / f"{split}.npz"


@dataclass(frozen=True)
class StageIO:
    """The data a stage reads and the files it writes (code and params are not listed here)."""

    deps: tuple[Path, ...]
    outs: tuple[Path, ...]


STAGES: dict[str, StageIO] = {
    "fetch": StageIO(deps=(), outs=(RAW_FILE,)),
    "preprocess": StageIO(deps=(RAW_FILE, FEEDBACK_DIR), outs=(PREPARED_DIR, DATA_REPORT)),
    "train": StageIO(deps=(PREPARED_DIR,), outs=(MODEL_DIR, TRAIN_PLOTS_DIR, TRAIN_METRICS)),
    "evaluate": StageIO(
        deps=(split_file("test"), MODEL_DIR, TRAIN_METRICS),  # its temperature: ECE before
        outs=(
            METRICS_FILE,
            SIZES_FILE,
            ROBUSTNESS_FILE,
            CONFUSION_FILE,
            MISTAKES_FILE,
            RELIABILITY_FILE,
        ),
    ),
    "reference": StageIO(deps=(split_file("val"), MODEL_DIR), outs=(REFERENCE_DIR,)),
    "register": StageIO(
        deps=(split_file("test"), MODEL_DIR, METRICS_FILE), outs=(MODEL_CARD_FILE,)
    ),
}
