"""Stage ``evaluate``: score the *exported* SavedModel on the official test set.

It loads what will be served, not the in-memory Keras model, so the numbers describe exactly the
artefact that ships.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import matplotlib as mpl

mpl.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import numpy.typing as npt
from sklearn.metrics import precision_recall_fscore_support

from mnist_contracts import paths
from mnist_contracts.lite import LITE_DIR, LITE_VARIANTS, LiteModel, lite_file
from mnist_contracts.model import read_identity
from mnist_pipeline import robustness, saved_model, tracking
from mnist_pipeline.atomic import write_text
from mnist_pipeline.calibration import Reliability, reliability, with_temperature
from mnist_pipeline.cli import run_stage
from mnist_pipeline.compress import single_image_latency_ms
from mnist_pipeline.dataset import NUM_CLASSES, Split, load_split
from mnist_pipeline.figures import save_png
from mnist_pipeline.params import flatten, load_params
from mnist_pipeline.pruning import gzip_size, sparsity

log = logging.getLogger(__name__)

_DIGITS = 6  # rounding keeps metrics.json diffs readable and byte-stable


def score(labels: npt.NDArray[np.uint8], probs: npt.NDArray[np.float32]) -> dict[str, Any]:
    """Accuracy, log loss, macro F1 and per-class precision/recall.

    The confusion matrix is written as a plot (``confusion_rows``), not here: DVC's metrics diff
    compares scalars.

    Args:
        labels: True classes ``[N]``.
        probs: Predicted probabilities ``[N,10]``.

    Returns:
        A JSON-ready dict of metrics.
    """
    predicted = probs.argmax(axis=1)
    classes = list(range(NUM_CLASSES))
    precision, recall, _, support = precision_recall_fscore_support(
        labels, predicted, labels=classes, average=None, zero_division=0
    )
    _, _, f1_macro, _ = precision_recall_fscore_support(
        labels, predicted, labels=classes, average="macro", zero_division=0
    )
    calibration = reliability(probs.max(axis=1), predicted == labels)
    true_probs = probs[np.arange(len(labels)), labels].astype(np.float64)
    loss = float(-np.log(np.clip(true_probs, 1e-7, 1.0)).mean()) if len(labels) else 0.0
    return {
        "accuracy": round(float((predicted == labels).mean()), _DIGITS),
        "loss": round(loss, _DIGITS),
        "f1_macro": round(float(f1_macro), _DIGITS),
        "ece": round(calibration.ece, _DIGITS),
        "errors": int((predicted != labels).sum()),
        "count": len(labels),
        "per_class": {
            str(c): {
                "precision": round(float(precision[c]), _DIGITS),
                "recall": round(float(recall[c]), _DIGITS),
                "support": int(support[c]),
            }
            for c in classes
        },
    }


def score_variant(
    labels: npt.NDArray[np.uint8],
    reference: npt.NDArray[np.float32],
    probs: npt.NDArray[np.float32],
) -> dict[str, float]:
    """A variant's test accuracy, its delta from the SavedModel's, and their agreement.

    Args:
        labels: True classes ``[N]``.
        reference: The SavedModel's probabilities ``[N,10]``.
        probs: The variant's probabilities ``[N,10]``.

    Returns:
        ``accuracy``, ``accuracy_delta`` (variant minus SavedModel) and ``agreement`` (share of
        images given the same class).
    """
    predicted, expected = probs.argmax(axis=1), reference.argmax(axis=1)
    accuracy = round(float(np.mean(predicted == labels)), _DIGITS)
    base = round(float(np.mean(expected == labels)), _DIGITS)
    return {
        "accuracy": accuracy,
        "accuracy_delta": round(accuracy - base, _DIGITS),
        "agreement": round(float(np.mean(predicted == expected)), _DIGITS),
    }


def confusion_rows(
    labels: npt.NDArray[np.uint8], predicted: npt.NDArray[np.int64]
) -> list[dict[str, int]]:
    """One ``{"actual", "predicted"}`` row per image: the input of DVC's confusion template.

    Args:
        labels: True classes.
        predicted: Predicted classes.

    Returns:
        The rows, in test-set order.
    """
    return [{"actual": int(a), "predicted": int(p)} for a, p in zip(labels, predicted, strict=True)]


def worst_mistakes(
    labels: npt.NDArray[np.uint8], probs: npt.NDArray[np.float32], count: int
) -> npt.NDArray[np.int64]:
    """Indices of the misclassified images the model was most confident about.

    Args:
        labels: True classes.
        probs: Predicted probabilities.
        count: How many to return at most.

    Returns:
        Indices, most confident mistake first (ties broken by index, so the order is stable).
    """
    predicted = probs.argmax(axis=1)
    wrong = np.flatnonzero(predicted != labels)
    confidence = probs[wrong, predicted[wrong]]
    order = np.lexsort((wrong, -confidence))
    return wrong[order][:count]


def draw_mistakes(
    test: Split, probs: npt.NDArray[np.float32], indices: npt.NDArray[np.int64], path: Path
) -> None:
    """Save a PNG grid of the given mistakes, each titled ``true -> predicted (confidence)``.

    Args:
        test: The test split.
        probs: Predicted probabilities.
        indices: Which images to draw.
        path: Destination PNG (written atomically).
    """
    cols = max(1, min(6, len(indices)))
    rows = max(1, -(-len(indices) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.9 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, indices, strict=False):
        guess = int(probs[i].argmax())
        ax.imshow(test.x[i], cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"{test.y[i]} -> {guess} ({probs[i, guess]:.2f})", fontsize=8)
    if len(indices) == 0:
        axes.flat[0].text(0.5, 0.5, "no mistakes", ha="center", va="center")
    fig.suptitle("Most confident mistakes: true -> predicted (confidence)", fontsize=9)
    save_png(fig, path, dpi=80)


def draw_reliability(table: Reliability, path: Path) -> None:
    """The reliability diagram: accuracy against confidence per bin, and how many fall in each.

    Args:
        table: :func:`mnist_pipeline.calibration.reliability` of the test predictions.
        path: Destination PNG (written atomically).
    """
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(4.5, 5.2), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    centres = (table.edges[:-1] + table.edges[1:]) / 2
    width = table.edges[1] - table.edges[0]
    used = table.count > 0
    top.bar(centres[used], table.accuracy[used], width=width * 0.9, color="#4c72b0",
            label="accuracy")  # fmt: skip
    top.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
    top.set_ylabel("accuracy")
    top.set_ylim(0, 1)
    top.set_title(f"Reliability (test set), ECE {table.ece:.4f}", fontsize=10)
    top.legend(fontsize=8, loc="upper left")
    bottom.bar(centres, table.count, width=width * 0.9, color="#999999")
    bottom.set_yscale("log")
    bottom.set_ylabel("images")
    bottom.set_xlabel("confidence (probability of the predicted digit)")
    save_png(fig, path, dpi=80)


def directory_size(path: Path, exclude: Path | None = None) -> int:
    """Total bytes of the files under ``path`` (leaving out those under ``path / exclude``)."""
    skip = None if exclude is None else path / exclude
    return sum(
        f.stat().st_size
        for f in path.rglob("*")
        if f.is_file() and (skip is None or not f.is_relative_to(skip))
    )


def gzip_directory_size(path: Path, exclude: Path | None = None) -> int:
    """Summed gzip sizes of the files under ``path`` (leaving out those under ``exclude``)."""
    skip = None if exclude is None else path / exclude
    return sum(
        gzip_size(f.read_bytes())
        for f in sorted(path.rglob("*"))
        if f.is_file() and (skip is None or not f.is_relative_to(skip))
    )


LOW_CONFIDENCE = 0.9  # a bucket of the service's confidence histogram (app/metrics.py)


def train_temperature(root: Path) -> float:
    """The temperature the train stage fitted and put in the export (1.0: none was fitted)."""
    summary = root / paths.TRAIN_METRICS
    if not summary.is_file():
        return 1.0
    return float(json.loads(summary.read_text(encoding="utf-8")).get("temperature", 1.0))


def main(root: Path = Path()) -> None:
    """Score the exported model on the test split and write metrics and plots.

    Every file written is a function of the model and the data (byte-identical on a re-run);
    single-image latencies, which vary run to run, go to the MLflow run only.

    Args:
        root: The repository root; paths come from :mod:`mnist_contracts.paths`.
    """
    params = load_params(root / paths.PARAMS_FILE)
    model_dir = root / paths.MODEL_DIR
    metrics_file, sizes_file = root / paths.METRICS_FILE, root / paths.SIZES_FILE
    confusion_file, mistakes_file = root / paths.CONFUSION_FILE, root / paths.MISTAKES_FILE
    reliability_file, robustness_file = root / paths.RELIABILITY_FILE, root / paths.ROBUSTNESS_FILE
    test = load_split("test", root / paths.PREPARED_DIR)
    predict = saved_model.load(model_dir, params.evaluate.batch_size)
    probs = predict(test.x)
    metrics: dict[str, Any] = {"test": score(test.y, probs)}
    # The export serves calibrated probabilities; ECE before is the raw model's, T undone.
    temperature = train_temperature(root)
    raw = with_temperature(probs, 1 / temperature)
    before = reliability(raw.max(axis=1), raw.argmax(axis=1) == test.y)
    metrics["calibration"] = {
        "temperature": temperature,
        "ece_before": round(before.ece, _DIGITS),
        "ece_after": metrics["test"]["ece"],
        # In-distribution share of answers at most LOW_CONFIDENCE sure: the MnistLowConfidence
        # alert's threshold is set well above it (monitoring/alerts.yml).
        "low_confidence_share": round(float((probs.max(axis=1) <= LOW_CONFIDENCE).mean()), _DIGITS),
    }
    each = saved_model.load_members(model_dir, params.evaluate.batch_size)
    if each is not None:  # an ensemble (train.ensemble > 1): every member's accuracy too
        metrics["members"] = {
            str(k): {"accuracy": round(float((p.argmax(axis=1) == test.y).mean()), _DIGITS)}
            for k, p in enumerate(each(test.x))
        }
    one = test.x[:1]
    sizes: dict[str, int] = {"savedmodel": directory_size(model_dir, exclude=LITE_DIR)}
    latency_ms = {"savedmodel": single_image_latency_ms(predict, one)}
    for variant in LITE_VARIANTS:
        lite = LiteModel(lite_file(model_dir, variant))
        metrics[variant] = score_variant(test.y, probs, lite(test.x))
        sizes[variant] = lite.size_bytes
        latency_ms[variant] = single_image_latency_ms(lite, one)
        if abs(metrics[variant]["accuracy_delta"]) > params.evaluate.lite_max_delta:
            log.warning(
                "%s: accuracy %+.4f from the SavedModel, outside evaluate.lite_max_delta %.4f",
                variant, metrics[variant]["accuracy_delta"], params.evaluate.lite_max_delta,
            )  # fmt: skip
    shifted = robustness.score(predict, test.x, test.y)
    compression = {
        "size_bytes": sizes,
        # Pruned (train.prune) zeros cost nothing once compressed: what a download or a registry
        # stores. The share of zero kernel weights says how much pruning there is.
        "gzip_bytes": {
            "savedmodel": gzip_directory_size(model_dir, exclude=LITE_DIR),
            **{v: gzip_size(lite_file(model_dir, v).read_bytes()) for v in LITE_VARIANTS},
        },
        "kernel_sparsity": round(sparsity(saved_model.kernels(model_dir)), _DIGITS),
    }
    write_text(sizes_file, json.dumps(compression, indent=2) + "\n")
    write_text(robustness_file, json.dumps({"robustness": shifted}, indent=2) + "\n")
    write_text(metrics_file, json.dumps(metrics, indent=2) + "\n")
    rows = confusion_rows(test.y, probs.argmax(axis=1))
    write_text(confusion_file, json.dumps(rows, separators=(",", ":")) + "\n")
    indices = worst_mistakes(test.y, probs, params.evaluate.mistakes)
    draw_mistakes(test, probs, indices, mistakes_file)
    calibration = reliability(probs.max(axis=1), probs.argmax(axis=1) == test.y)
    draw_reliability(calibration, reliability_file)
    digest = read_identity(model_dir).digest
    with tracking.model_run(params.tracking.experiment, digest, flatten(params)):
        extra = {"size_bytes": sizes, "single_image_ms": latency_ms, "robustness": shifted}
        tracking.log_metrics({**metrics, **extra})
        written = (metrics_file, sizes_file, robustness_file, confusion_file, mistakes_file)
        for path in (*written, reliability_file):
            tracking.log_artifact(path, "evaluation")
    log.info(
        "test accuracy %.4f, loss %.4f, macro F1 %.4f on %d images; worst shift %s %.4f",
        metrics["test"]["accuracy"],
        metrics["test"]["loss"],
        metrics["test"]["f1_macro"],
        len(test),
        *min(((n, r["accuracy"]) for n, r in shifted.items()), key=lambda item: item[1]),
    )


if __name__ == "__main__":
    run_stage(main, "evaluate")
