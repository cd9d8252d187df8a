"""Stage ``reference``: what live digits should look like, for the drift monitor.

A seeded sample of validation images, summarised by the same feature function the monitor uses
on live inputs, plus the exported model's predicted class and confidence for each.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from mnist_contracts import paths
from mnist_contracts.lite import SAVEDMODEL
from mnist_contracts.model import read_identity
from mnist_pipeline import saved_model
from mnist_pipeline.atomic import atomic_path
from mnist_pipeline.cli import run_stage
from mnist_pipeline.dataset import load_split
from mnist_pipeline.drift_features import drift_frame
from mnist_pipeline.params import load_params

log = logging.getLogger(__name__)


def main(root: Path = Path()) -> None:
    """Write ``data/reference/{features.csv,reference.json}``.

    The directory is replaced as a whole.

    Args:
        root: The repository root; paths come from :mod:`mnist_contracts.paths`.
    """
    params = load_params(root / paths.PARAMS_FILE)
    model_dir, out_dir = root / paths.MODEL_DIR, root / paths.REFERENCE_DIR
    val = load_split("val", root / paths.PREPARED_DIR)
    rng = np.random.default_rng(params.seed)
    size = min(params.monitor.reference_size, len(val))
    chosen = np.sort(rng.choice(len(val), size=size, replace=False))
    images = val.x[chosen]
    probs = saved_model.load(model_dir)(images)
    frame = drift_frame(images, probs.argmax(axis=1), probs.max(axis=1))
    # The SavedModel's outputs: a TFLite variant's differ slightly (the monitor reports which).
    info = {"model_version": read_identity(model_dir).digest, "variant": SAVEDMODEL, "count": size}
    with atomic_path(out_dir, directory=True) as tmp:
        frame.to_csv(tmp / "features.csv", index=False, float_format="%.6g")
        (tmp / "reference.json").write_text(json.dumps(info, indent=2) + "\n")
    log.info("reference of %d validation images for model %s", size, info["model_version"])


if __name__ == "__main__":
    run_stage(main, "reference")
