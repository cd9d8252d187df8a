"""Stage ``fetch``: the official MNIST set, checksum-verified, into ``data/raw/mnist.npz``."""

from __future__ import annotations

import logging
from pathlib import Path

from mnist_pipeline import sources
from mnist_pipeline.cli import run_stage
from mnist_pipeline.dataset import RAW_FILE, class_counts, save_raw
from mnist_pipeline.params import PARAMS_FILE, load_params

log = logging.getLogger(__name__)


def main(params_file: Path = PARAMS_FILE, out: Path = RAW_FILE) -> None:
    """Fetch from the configured source, validate, and write the raw set atomically.

    Args:
        params_file: The params file.
        out: Destination ``.npz``; only ever replaced by a complete, validated file.
    """
    params = load_params(params_file)
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
