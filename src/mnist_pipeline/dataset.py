"""The on-disk data formats shared by the stages, and the checks every array must pass.

Formats (plain NumPy ``.npz``, read with ``allow_pickle=False``, so loading runs no code):

* ``data/raw/mnist.npz``: ``x_train`` ``uint8[60000,28,28]``, ``y_train`` ``uint8[60000]``,
  ``x_test`` ``uint8[10000,28,28]``, ``y_test`` ``uint8[10000]``. Pixels 0-255, white digit on
  black, exactly the bytes of the canonical IDX files.
* ``data/prepared/{train,val,test}.npz``: ``x`` ``uint8[N,28,28]`` and ``y`` ``uint8[N]``.
* ``data/feedback/feedback.npz`` (``mnist collect``, DVC-tracked): live images whose true label
  came back, ``x``, ``y`` (the true label), ``predicted`` ``uint8[N]`` and ``ids`` ``S32[N]``
  (event ids, sorted: the same events give the same bytes).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from mnist_contracts.model import IMAGE_SHAPE, NUM_CLASSES
from mnist_pipeline.atomic import atomic_path
from mnist_pipeline.errors import PipelineError

__all__ = ["IMAGE_SHAPE", "NUM_CLASSES", "RawMnist", "Split"]
SPLITS = ("train", "val", "test")
OFFICIAL_TRAIN_SIZE = 60_000
OFFICIAL_TEST_SIZE = 10_000

Images = npt.NDArray[np.uint8]
Labels = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class Split:
    """Images and their labels."""

    x: Images
    y: Labels

    def __len__(self) -> int:
        return int(self.y.shape[0])


@dataclass(frozen=True)
class RawMnist:
    """The official training and test sets."""

    train: Split
    test: Split


def check_split(name: str, split: Split, *, expected_size: int | None = None) -> None:
    """Fail loudly unless ``split`` is well-formed MNIST data.

    Args:
        name: Split name used in the error message.
        split: The arrays to check.
        expected_size: If given, the exact number of examples required.

    Raises:
        PipelineError: On a wrong shape, dtype, size, a label outside 0-9, or a missing class.
    """
    x, y = split.x, split.y
    if x.dtype != np.uint8 or y.dtype != np.uint8:
        raise PipelineError(
            f"{name}: expected uint8 images and labels, got {x.dtype} and {y.dtype}"
        )
    if x.ndim != 3 or x.shape[1:] != IMAGE_SHAPE:
        raise PipelineError(f"{name}: expected images of shape [N,28,28], got {list(x.shape)}")
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise PipelineError(f"{name}: {x.shape[0]} images but labels of shape {list(y.shape)}")
    if expected_size is not None and len(split) != expected_size:
        raise PipelineError(f"{name}: expected {expected_size} examples, got {len(split)}")
    if len(split) and int(y.max()) >= NUM_CLASSES:
        raise PipelineError(f"{name}: label {int(y.max())} is outside 0-9")
    missing = sorted(set(range(NUM_CLASSES)) - set(np.unique(y).tolist()))
    if missing:
        raise PipelineError(f"{name}: no examples of class(es) {missing}; use a larger limit")


def check_disjoint(splits: dict[str, Split]) -> None:
    """Fail if any image appears (byte for byte) in two splits, or twice in one.

    MNIST has no exact duplicates, so any repeat means the split leaked examples.

    Args:
        splits: Split name to arrays.

    Raises:
        PipelineError: Naming the two splits that share an image.
    """
    seen: dict[bytes, str] = {}
    for name, split in splits.items():
        for image in split.x:
            digest = hashlib.blake2b(image.tobytes(), digest_size=16).digest()
            other = seen.setdefault(digest, name)
            if other is not name:
                raise PipelineError(f"duplicated split: an image is in both {other} and {name}")


def class_counts(labels: Labels) -> list[int]:
    """Count examples per class.

    Args:
        labels: Class labels 0-9.

    Returns:
        Ten counts, index = class.
    """
    return [int(c) for c in np.bincount(labels, minlength=NUM_CLASSES)]


def save_raw(raw: RawMnist, path: Path) -> None:
    """Validate and atomically write the raw set.

    Args:
        raw: The official train and test sets.
        path: Destination ``.npz``.
    """
    check_split("raw train", raw.train, expected_size=OFFICIAL_TRAIN_SIZE)
    check_split("raw test", raw.test, expected_size=OFFICIAL_TEST_SIZE)
    with atomic_path(path) as tmp, tmp.open("wb") as fh:
        np.savez_compressed(
            fh, x_train=raw.train.x, y_train=raw.train.y, x_test=raw.test.x, y_test=raw.test.y
        )


def _load_npz(path: Path, keys: tuple[str, ...]) -> dict[str, npt.NDArray[np.uint8]]:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in keys}
    except FileNotFoundError:
        raise PipelineError(f"{path}: not found; run the previous stage (dvc repro)") from None
    except (KeyError, ValueError, OSError) as err:
        raise PipelineError(f"{path}: not a valid data file ({err}); re-run dvc repro") from None


def load_raw(path: Path) -> RawMnist:
    """Read the raw set written by the fetch stage.

    Args:
        path: The raw ``.npz``.

    Returns:
        The official train and test sets (not yet validated).
    """
    data = _load_npz(path, ("x_train", "y_train", "x_test", "y_test"))
    return RawMnist(
        train=Split(data["x_train"], data["y_train"]), test=Split(data["x_test"], data["y_test"])
    )


def save_split(split: Split, path: Path) -> None:
    """Atomically write one prepared split.

    Args:
        split: Images and labels.
        path: Destination ``.npz``.
    """
    with atomic_path(path) as tmp, tmp.open("wb") as fh:
        np.savez(fh, x=split.x, y=split.y)


@dataclass(frozen=True)
class Feedback:
    """Labelled live events: images, true labels, what the model said, and their event ids."""

    x: Images
    y: Labels
    predicted: Labels
    ids: npt.NDArray[np.bytes_]

    def __len__(self) -> int:
        """How many events."""
        return len(self.y)


def save_feedback(feedback: Feedback, path: Path) -> None:
    """Validate and atomically write the feedback set, sorted by event id.

    Raises:
        PipelineError: If the images or labels are malformed.
    """
    order = np.argsort(feedback.ids, kind="stable")
    check_split("feedback", Split(feedback.x[order], feedback.y[order]))
    with atomic_path(path) as tmp, tmp.open("wb") as fh:
        np.savez(fh, x=feedback.x[order], y=feedback.y[order],
                 predicted=feedback.predicted[order], ids=feedback.ids[order])  # fmt: skip


def load_feedback(path: Path) -> Feedback:
    """Read and validate the feedback set written by ``mnist collect``.

    Raises:
        PipelineError: If it is missing or malformed.
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            found = Feedback(data["x"], data["y"], data["predicted"], data["ids"])
    except FileNotFoundError:
        raise PipelineError(
            f"{path}: no feedback data; run mnist collect (and dvc pull), or set "
            "preprocess.feedback: false"
        ) from None
    except (KeyError, ValueError, OSError) as err:
        raise PipelineError(
            f"{path}: not a valid feedback file ({err}); run mnist collect"
        ) from None
    check_split("feedback", Split(found.x, found.y))
    if len(found.predicted) != len(found) or len(found.ids) != len(found):
        raise PipelineError(f"{path}: predicted and ids must have one entry per image")
    return found


def load_split(name: str, directory: Path) -> Split:
    """Read and validate one prepared split.

    Args:
        name: ``train``, ``val`` or ``test``.
        directory: The prepared-data directory.

    Returns:
        The validated split.
    """
    data = _load_npz(directory / f"{name}.npz", ("x", "y"))
    split = Split(data["x"], data["y"])
    check_split(name, split)
    return split
