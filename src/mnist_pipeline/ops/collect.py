"""``mnist collect``: labelled live events into the DVC-tracked training data.

Reads every prediction event whose true label came back (``POST /feedback``) from the event
stream or the embedded log, merges them into ``data/feedback/feedback.npz`` (deduplicated by event
id, checked like the raw data, sorted so the same events give the same bytes) and tracks the
file with DVC. ``dvc exp run -S preprocess.feedback=true`` then retrains with them.
"""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

import numpy as np

from mnist_contracts.event_store import LogError, open_events
from mnist_pipeline.dataset import Feedback, load_feedback, save_feedback
from mnist_pipeline.errors import PipelineError
from mnist_pipeline.ops.tools import tool

log = logging.getLogger(__name__)


def collect(events: str | Path, prefix: str, out: Path) -> tuple[int, int, int]:
    """Merge the labelled events of ``events`` into ``out``.

    Returns:
        New events added, events in the file now, and labelled events skipped (no image).

    Raises:
        PipelineError: If the source cannot be read or the existing file is malformed.
    """
    old = load_feedback(out) if out.exists() else None
    known = set() if old is None else {bytes(i) for i in old.ids}
    images, labels, predicted, ids = [], [], [], []
    skipped = 0
    try:
        for event in open_events(events, prefix).labelled():
            key = event.event_id.encode()
            if key in known:
                continue
            if event.image is None:  # the stream kept only a share of the inputs
                skipped += 1
                continue
            known.add(key)
            images.append(event.image)
            labels.append(event.label)
            predicted.append(event.predicted_class)
            ids.append(key)
    except LogError as err:
        raise PipelineError(str(err)) from None
    if not ids:
        return 0, 0 if old is None else len(old), skipped
    new = Feedback(
        np.stack(images).astype(np.uint8), np.array(labels, np.uint8),
        np.array(predicted, np.uint8), np.array(ids, "S32"),
    )  # fmt: skip
    if old is not None:
        new = Feedback(*(np.concatenate([a, b]) for a, b in zip(
            (old.x, old.y, old.predicted, old.ids), (new.x, new.y, new.predicted, new.ids),
            strict=True)))  # fmt: skip
    save_feedback(new, out)
    return len(ids), len(new), skipped


def dvc_add(path: Path) -> None:
    """Track ``path`` with DVC (the ``.dvc`` file is then the thing to commit).

    Raises:
        PipelineError: If ``dvc add`` fails.
    """
    result = subprocess.run([tool("dvc"), "add", "-q", str(path)], capture_output=True, text=True,
                            check=False)  # fmt: skip
    if result.returncode != 0:
        first = (result.stderr.strip().splitlines() or ["dvc add failed"])[-1]
        raise PipelineError(f"dvc add {path}: {first}")
