"""Stage ``preprocess``: a seeded, stratified validation split, validated, plus a data report.

With ``preprocess.feedback: true`` the labelled live events of ``data/feedback`` (``mnist collect``)
join the training split, never validation or test; an image already in any split is left out,
so a live copy of a test digit cannot leak into training.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split

from mnist_contracts import paths
from mnist_pipeline.atomic import atomic_path, write_text
from mnist_pipeline.cli import run_stage
from mnist_pipeline.dataset import (
    Feedback,
    RawMnist,
    Split,
    check_disjoint,
    check_split,
    class_counts,
    load_feedback,
    load_raw,
    save_split,
)
from mnist_pipeline.errors import PipelineError
from mnist_pipeline.params import PreprocessParams, load_params

log = logging.getLogger(__name__)


def split_train_val(train: Split, params: PreprocessParams, seed: int) -> tuple[Split, Split]:
    """Keep the first ``limit`` training images, then split off a stratified validation set.

    Args:
        train: The official training set.
        params: ``val_size`` (count or fraction) and ``limit``.
        seed: Seed of the split.

    Returns:
        The training and validation splits; every class keeps its share in both.

    Raises:
        PipelineError: If the data are too few to split with every class on both sides.
    """
    if params.limit is not None:
        train = Split(train.x[: params.limit], train.y[: params.limit])
    try:
        x_tr, x_val, y_tr, y_val = train_test_split(
            train.x, train.y, test_size=params.val_size, stratify=train.y, random_state=seed
        )
    except ValueError as err:
        raise PipelineError(
            f"cannot split {len(train)} images into train/val with val_size={params.val_size}: "
            f"{err}; raise preprocess.limit or lower preprocess.val_size"
        ) from None
    return Split(x_tr, y_tr), Split(x_val, y_val)


def prepare(raw: RawMnist, params: PreprocessParams, seed: int) -> dict[str, Split]:
    """Validate the raw set and build the three splits, validated and disjoint.

    Args:
        raw: The official train and test sets.
        params: The ``preprocess`` section.
        seed: The global seed.

    Returns:
        ``{"train": ..., "val": ..., "test": ...}``.
    """
    # Sizes are checked against the official ones when fetch writes the file; here the shape,
    # dtype, label and class checks apply to any input, including tiny test data.
    check_split("raw train", raw.train)
    check_split("raw test", raw.test)
    train, val = split_train_val(raw.train, params, seed)
    splits = {"train": train, "val": val, "test": raw.test}
    for name, split in splits.items():
        check_split(name, split)
    check_disjoint(splits)
    return splits


def add_feedback(
    splits: dict[str, Split], feedback: Feedback
) -> tuple[dict[str, Split], dict[str, int]]:
    """Append the feedback images that no split holds yet to the training split.

    Args:
        splits: The prepared splits.
        feedback: Labelled live events.

    Returns:
        The splits with the larger training split, and the counts of added and left-out images.
    """
    seen = {image.tobytes() for split in splits.values() for image in split.x}
    keep: list[int] = []
    for i, image in enumerate(feedback.x):
        if image.tobytes() not in seen:
            seen.add(image.tobytes())
            keep.append(i)
    train = splits["train"]
    added = Split(
        np.concatenate([train.x, feedback.x[keep]]), np.concatenate([train.y, feedback.y[keep]])
    )
    wrong = int((feedback.predicted[keep] != feedback.y[keep]).sum())
    counts = {"added": len(keep), "left_out": len(feedback) - len(keep), "model_was_wrong": wrong}
    return {**splits, "train": added}, counts


def data_report(splits: dict[str, Split]) -> dict[str, dict[str, object]]:
    """Counts per split and per class.

    Args:
        splits: The prepared splits.

    Returns:
        ``{split: {"count": n, "per_class": {"0": n0, ...}}}``.
    """
    return {
        name: {
            "count": len(split),
            "per_class": {str(c): n for c, n in enumerate(class_counts(split.y))},
        }
        for name, split in splits.items()
    }


def main(root: Path = Path()) -> None:
    """Split, validate and write ``data/prepared/`` and ``reports/data.json``.

    Args:
        root: The repository root; paths come from :mod:`mnist_contracts.paths`.
    """
    params = load_params(root / paths.PARAMS_FILE)
    out_dir, report = root / paths.PREPARED_DIR, root / paths.DATA_REPORT
    splits = prepare(load_raw(root / paths.RAW_FILE), params.preprocess, params.seed)
    counts = None
    if params.preprocess.feedback:
        splits, counts = add_feedback(splits, load_feedback(root / paths.FEEDBACK_FILE))
        check_split("train", splits["train"])
        check_disjoint(splits)
    # The directory is replaced as a whole, so a failure never leaves a mix of old and new splits.
    with atomic_path(out_dir, directory=True) as tmp:
        for name, split in splits.items():
            save_split(split, tmp / f"{name}.npz")
    summary = data_report(splits)
    if counts is not None:
        summary["feedback"] = dict(counts)
    write_text(report, json.dumps(summary, indent=2) + "\n")
    log.info("prepared %s", {name: len(split) for name, split in splits.items()})


if __name__ == "__main__":
    run_stage(main, "preprocess")
