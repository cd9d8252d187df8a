"""What a change costs at serving time: model size, single-image latency, batch throughput.

Both sides' exported models are measured in the same process, alternating, on the same machine,
and compared as ratios (absolute figures vary between runners; ratios much less). A side's model
comes from the workspace or, for a revision, ``dvc get`` from the local DVC cache or the
configured remote; it is never trained again. Without it, its cost is "unavailable".
"""

from __future__ import annotations

import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mnist_contracts import paths
from mnist_contracts.model import IMAGE_SHAPE, load_serve
from mnist_pipeline import markdown
from mnist_pipeline.ops.tools import tool

SINGLE_CALLS = 300
BATCH = 256
BATCH_CALLS = 10
ROUNDS = 3


@dataclass(frozen=True)
class Cost:
    """One model's serving cost."""

    size_bytes: int
    single_ms: float  # the median call
    batch_images_per_s: float
    single_p99_ms: float
    single_per_s: float  # one caller, back to back: calls / their total time


def fetch_model(rev: str | None, dst: Path) -> tuple[Path | None, str]:
    """A side's exported model: the workspace's, or ``dvc get`` of the revision's.

    Args:
        rev: The revision (None: the workspace).
        dst: An empty directory to download into.

    Returns:
        The model directory (None when unavailable) and where it came from or why not.
    """
    if rev is None:
        local = Path(paths.MODEL_DIR)
        found = (local / "saved_model.pb").is_file()
        return (local, "workspace") if found else (None, "no models/mnist in the workspace")
    target = dst / "mnist"
    result = subprocess.run(
        [tool("dvc"), "get", ".", str(paths.MODEL_DIR), "--rev", rev, "-o", str(target)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0 or not (target / "saved_model.pb").is_file():
        return None, "not in the DVC cache or remote (configure one: make remote; make push)"
    return target, "DVC cache or remote"


def _times_s(predict: Callable[[np.ndarray], object], x: np.ndarray, calls: int) -> list[float]:
    """Wall seconds of each of ``calls`` calls of ``predict(x)``."""
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        predict(x)
        times.append(time.perf_counter() - started)
    return times


def measure(models: list[Path]) -> list[Cost]:
    """Measure every model, alternating rounds so drift in machine load hits all alike.

    Args:
        models: SavedModel directories.

    Returns:
        One cost per model: medians over the rounds.
    """
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (1, *IMAGE_SHAPE), dtype=np.uint8)
    batch = rng.integers(0, 256, (BATCH, *IMAGE_SHAPE), dtype=np.uint8)
    serves = [load_serve(m) for m in models]
    for serve in serves:  # warm-up: trace both shapes once
        serve(image)
        serve(batch)
    singles: list[list[float]] = [[] for _ in models]  # every single-image call's seconds
    batches: list[list[float]] = [[] for _ in models]
    for _ in range(ROUNDS):
        for i, serve in enumerate(serves):
            singles[i] += _times_s(serve, image, SINGLE_CALLS)
            batches[i].append(BATCH / statistics.median(_times_s(serve, batch, BATCH_CALLS)))
    return [
        Cost(
            size_bytes=sum(f.stat().st_size for f in m.rglob("*") if f.is_file()),
            single_ms=1000 * statistics.median(singles[i]),
            batch_images_per_s=statistics.median(batches[i]),
            single_p99_ms=1000 * float(np.quantile(singles[i], 0.99)),
            single_per_s=len(singles[i]) / sum(singles[i]),
        )
        for i, m in enumerate(models)
    ]


def cost_section(base: Cost | None, new: Cost | None, why: str) -> str:
    """Markdown: both sides' cost and the ratios, or why a side is unavailable."""
    if new is None:
        return f"Cost unavailable: the compared side's model is {why}."
    rows = [
        ("model size", f"{new.size_bytes / 1e6:.2f} MB", base and f"{base.size_bytes / 1e6:.2f} MB",
         base and new.size_bytes / base.size_bytes),
        ("single image (median)", f"{new.single_ms:.3f} ms", base and f"{base.single_ms:.3f} ms",
         base and new.single_ms / base.single_ms),
        ("single image (p99)", f"{new.single_p99_ms:.3f} ms",
         base and f"{base.single_p99_ms:.3f} ms", base and new.single_p99_ms / base.single_p99_ms),
        (f"batch of {BATCH}", f"{new.batch_images_per_s:,.0f} images/s",
         base and f"{base.batch_images_per_s:,.0f} images/s",
         base and new.batch_images_per_s / base.batch_images_per_s),
    ]  # fmt: skip
    lines = [markdown.table(("cost", "base", "new", "new / base"), [
        (name, base_value or "unavailable", new_value, f"**{ratio:.2f}x**" if ratio else "-")
        for name, new_value, base_value, ratio in rows
    ])]  # fmt: skip
    note = (
        "Measured in this run, one process, alternating sides, TensorFlow on the CPU."
        if base is not None
        else f"The base's cost is unavailable: its model is {why}; it is never trained again."
    )
    return "\n".join([*lines, "", note])
