"""Stage ``fetch``: the official MNIST set, checksum-verified, into ``data/raw/mnist.npz``."""

from __future__ import annotations

import logging
from pathlib import Path

from mnist_contracts import paths
from mnist_pipeline import sources
from mnist_pipeline.cli import run_stage
from mnist_pipeline.dataset import class_counts, save_raw
from mnist_pipeline.params import load_params

log = logging.getLogger(__name__)


def main(root: Path = Path()) -> None:
    """Fetch from the configured source, validate, and write the raw set atomically.

    The destination is only ever replaced by a complete, validated file.

    Args:
        root: The repository root; paths come from :mod:`mnist_contracts.paths`.
    """
    params = load_params(root / paths.PARAMS_FILE)
    out = root / paths.RAW_FILE
    raw = sources.fetch(params.fetch)
    save_raw(raw, out)
    log.info(
        "wrote %s: %d train, %d test images; test class counts %s",
        out,
        len(raw.train),
        len(raw.test),
        class_counts(raw.test.y),
    )


if __name__ == "__main__":
    run_stage(main, "fetch")
