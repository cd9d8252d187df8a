"""Tiny, learnable digit-like data built in the test, never downloaded."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from mnist_pipeline.dataset import Split


def make_digits(n: int, seed: int) -> Split:
    """``n`` images whose class is a bright bar at a class-specific place, plus noise.

    Easy enough that one short epoch learns it, and every image is distinct.
    """
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % 10).astype(np.uint8)
    rng.shuffle(labels)
    images = rng.integers(0, 40, size=(n, 28, 28), dtype=np.uint8)
    for i, label in enumerate(labels):
        row = 3 + 4 * (label % 5) + rng.integers(-1, 2)
        col = 4 if label < 5 else 16
        images[i, row : row + 3, col : col + 8] = 255
    return Split(images, labels)


def variables_digest(model_dir: Path) -> str:
    """SHA-256 over the exported model's variable files: equal means byte-identical weights."""
    digest = hashlib.sha256()
    for path in sorted((model_dir / "variables").iterdir()):
        digest.update(path.read_bytes())
    return digest.hexdigest()
