"""How often does mnist monitor say "drift", and how often would it page, for each kind of traffic?

For each kind of traffic (official test digits as they are, inverted, rotated 30-45 degrees,
thickened, noisy, only 1s and 7s, and the two halves of the official test set in their published
order, which come from two populations of writers) it draws 20 seeded windows of
``monitor.window`` images, runs the exported model and the same drift report as
``mnist monitor`` against ``data/reference``, and grades each window as the monitor does without
labels (:func:`mnist_pipeline.ops.monitor.grade`). Per kind, ``reports/drift_detection.json``
gives the drift rate, the true accuracy (the labels are known here), the accuracy estimated from
the calibrated confidences, its error and how often its 95% interval covered the truth, and the
rates of ``page`` and ``ticket``. A kind is harmful when its true accuracy is below
``monitor.min_live_accuracy``.

Usage: ``python scripts/drift_detection_rate.py`` after ``make repro``. Not part of the tests.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy import ndimage

from mnist_contracts.drift import LiveQuality
from mnist_pipeline import saved_model
from mnist_pipeline.dataset import load_split
from mnist_pipeline.drift_features import drift_frame
from mnist_pipeline.ops.monitor import grade, load_reference, run_report, summarise
from mnist_pipeline.params import load_params
from mnist_pipeline.performance import estimate_accuracy

ROOT = Path(__file__).resolve().parents[1]
SEEDS = 20

Shift = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def rotate(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rotate each image by 30-45 degrees, either way."""
    angles = rng.uniform(30, 45, len(images)) * rng.choice([-1, 1], len(images))
    return np.stack(
        [ndimage.rotate(i, a, reshape=False, order=1) for i, a in zip(images, angles, strict=True)]
    )


KINDS: dict[str, Shift] = {
    "in-distribution": lambda x, _: x,
    "inverted": lambda x, _: 255 - x,
    "rotated 30-45 degrees": rotate,
    "thickened (3x3 dilation)": lambda x, _: np.stack(
        [ndimage.grey_dilation(i, size=(3, 3)) for i in x]
    ),
    "noisy (sigma 70)": lambda x, rng: np.clip(x + rng.normal(0, 70, x.shape), 0, 255).astype(
        np.uint8
    ),
}


def windows(kind: str, test_x: np.ndarray, test_y: np.ndarray, size: int,
            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """One seeded window of ``kind``: images and their labels."""
    if kind.startswith("writers"):  # consecutive images of one half, in the published order
        half = len(test_x) // 2
        offset = 0 if "first" in kind else half
        start = offset + int(rng.integers(0, half - size + 1))
        return test_x[start : start + size], test_y[start : start + size]
    pool = np.isin(test_y, [1, 7]) if kind == "only 1s and 7s" else np.ones(len(test_y), bool)
    chosen = rng.choice(np.flatnonzero(pool), size, replace=False)
    images = test_x[chosen]
    shift = KINDS.get(kind)
    return (images if shift is None else shift(images, rng)), test_y[chosen]


def main() -> None:
    """Run every kind x seed and write the rates."""
    # Evidently's correlations divide by a zero spread on some shifted columns (inverted digits):
    # numpy warns once per window, and the drift statistics do not use that value.
    warnings.simplefilter("ignore", RuntimeWarning)
    params = load_params(ROOT / "params.yaml").monitor
    reference, _ = load_reference(ROOT / "data/reference")
    expected = float(reference["confidence"].mean())
    test = load_split("test", ROOT / "data/prepared")
    predict = saved_model.load(ROOT / "models/mnist")
    no_labels: LiveQuality = {
        "labelled": 0, "accuracy": None, "recall_per_class": {}, "below_min": False,
        "min_accuracy": params.min_live_accuracy, "min_labels": params.min_labels,
    }  # fmt: skip
    kinds = [*KINDS, "only 1s and 7s", "writers: first half of the test set",
             "writers: second half of the test set"]  # fmt: skip
    results = {}
    for kind in kinds:
        named: list[str] = []
        rows = []
        for seed in range(SEEDS):
            rng = np.random.default_rng(seed)
            images, labels = windows(kind, test.x, test.y, params.window, rng)
            probs = predict(images)
            frame = drift_frame(images, probs.argmax(axis=1), probs.max(axis=1))
            summary = summarise(json.loads(run_report(frame, reference, params).json()))
            named += [c for c, v in summary["columns"].items() if v["drifted"]]
            estimate = estimate_accuracy(probs.max(axis=1))
            truth = float((probs.argmax(axis=1) == labels).mean())
            level = grade(bool(summary["drift"]), no_labels, estimate, expected, params)["level"]
            rows.append((bool(summary["drift"]), truth, estimate, level))
        truth = float(np.mean([r[1] for r in rows]))
        top = sorted(set(named), key=lambda c: -named.count(c))[:4]
        results[kind] = {
            "harmful": truth < params.min_live_accuracy,
            "detection_rate": float(np.mean([r[0] for r in rows])),
            "true_accuracy": round(truth, 4),
            "estimated_accuracy": round(float(np.mean([r[2].accuracy for r in rows])), 4),
            "mean_abs_error": round(float(np.mean([abs(r[2].accuracy - r[1]) for r in rows])), 4),
            "interval_coverage": float(np.mean([r[2].low <= r[1] <= r[2].high for r in rows])),
            "page_rate": float(np.mean([r[3] == "page" for r in rows])),
            "ticket_rate": float(np.mean([r[3] == "ticket" for r in rows])),
            "most_named": top,
        }
        print(f"{kind:40s} {results[kind]}", flush=True)
    report = {"samples_per_kind": SEEDS, "window": params.window,
              "reference_estimated_accuracy": round(expected, 4),
              "min_live_accuracy": params.min_live_accuracy, "harm_margin": params.harm_margin,
              "results": results}  # fmt: skip
    (ROOT / "reports/drift_detection.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
