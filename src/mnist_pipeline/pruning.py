"""Magnitude pruning for ``train.prune``: a small Keras 3 callback with tfmot's schedule.

tensorflow-model-optimization cannot join the lock (0.8.1 needs ``absl-py~=1.2``; the lock pins
2.5.1) and its Keras path needs tf-keras, which pulls the full ``tensorflow`` beside
``tensorflow-cpu``. What it does for magnitude pruning is small, so it is written here:

- tfmot's ``PolynomialDecay`` schedule: the target sparsity ``s(t) = s_f (1 - (1 - p)^3)``, where
  ``p`` is the share of the pruning window elapsed, updated every ``frequency`` steps;
- at each update, every kernel (dense and convolution weights; not biases or normalisation)
  keeps its largest-magnitude weights and the rest are zeroed by a mask;
- after every step the masks are applied again, so the optimiser cannot regrow pruned weights;
- the masks live in the callback only: the model exported afterwards is a plain model whose
  pruned weights are zeros (which is what gzip and the int8 LiteRT file then compress).
"""

from __future__ import annotations

import gzip
import math
from collections.abc import Iterable

import keras
import numpy as np
import numpy.typing as npt


def polynomial_sparsity(step: int, begin: int, end: int, target: float, power: int = 3) -> float:
    """The sparsity due at ``step`` by tfmot's ``PolynomialDecay`` (0 before ``begin``).

    Args:
        step: The optimiser step.
        begin: The step pruning starts.
        end: The step the target is reached (and held after).
        target: The final sparsity, in [0, 1).
        power: The polynomial's power (tfmot's default 3: fast first, then gently).

    Returns:
        The sparsity to apply.
    """
    if step < begin:
        return 0.0
    progress = 1.0 if end <= begin else min(1.0, (step - begin) / (end - begin))
    return target * (1.0 - (1.0 - progress) ** power)


def prunable(model: keras.Model) -> list[keras.Variable]:
    """The kernels pruning applies to: every dense and convolution layer's ``kernel``."""
    return [
        layer.kernel
        for layer in model.layers
        if isinstance(layer, keras.layers.Dense | keras.layers.Conv2D)
    ]


def magnitude_mask(weights: npt.NDArray[np.float32], sparsity: float) -> npt.NDArray[np.bool_]:
    """Keep the largest-magnitude weights; ``sparsity`` of them (rounded down) become False.

    Ties at the threshold are broken by position, so the mask is the same on every run.
    """
    flat = np.abs(weights).ravel()
    drop = math.floor(sparsity * flat.size)
    keep = np.ones(flat.size, dtype=bool)
    if drop > 0:
        keep[np.argsort(flat, kind="stable")[:drop]] = False
    return keep.reshape(weights.shape)


class MagnitudePruning(keras.callbacks.Callback):  # type: ignore[misc]
    """Prune a model's kernels to ``target`` sparsity during ``fit`` (see the module)."""

    def __init__(self, target: float, begin: int, end: int, frequency: int = 100) -> None:
        """Prune to ``target`` between the steps ``begin`` and ``end``.

        Args:
            target: The final share of zero weights in each kernel.
            begin: The optimiser step pruning starts.
            end: The step the target is reached.
            frequency: Steps between mask updates.
        """
        super().__init__()
        self.target, self.begin, self.end, self.frequency = target, begin, end, frequency
        self.step = 0
        self.masks: list[npt.NDArray[np.bool_]] = []

    def on_train_batch_end(self, batch: int, logs: dict[str, float] | None = None) -> None:
        """Update the masks when due, then apply them."""
        kernels = prunable(self.model)
        due = self.step >= self.begin and (
            (self.step - self.begin) % self.frequency == 0 or self.step == self.end
        )
        if due and self.step <= self.end:
            sparsity = polynomial_sparsity(self.step, self.begin, self.end, self.target)
            self.masks = [magnitude_mask(np.asarray(k.numpy()), sparsity) for k in kernels]
        for kernel, mask in zip(kernels, self.masks, strict=False):
            kernel.assign(np.where(mask, kernel.numpy(), 0.0).astype(kernel.dtype))
        self.step += 1


def sparsity(kernels: Iterable[npt.NDArray[np.floating]]) -> float:
    """The share of exactly-zero weights over the given kernels."""
    arrays = [np.asarray(k) for k in kernels]
    total = sum(a.size for a in arrays)
    return float(sum(int((a == 0).sum()) for a in arrays) / total) if total else 0.0


def gzip_size(data: bytes) -> int:
    """Bytes of ``data`` gzip-compressed (level 9, no timestamp: the same bytes every run)."""
    return len(gzip.compress(data, compresslevel=9, mtime=0))
