"""One Keras callback that hands each epoch's metrics to every tracker.

DVCLive (and, when tracking is on, MLflow) receive exactly the same numbers at the same step,
so the curves in ``dvc plots`` and in the MLflow UI can never disagree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import keras

# Keras' log keys -> the names the trackers show. Validation metrics are grouped under "val/".
METRIC_NAMES = {
    "loss": "train/loss",
    "accuracy": "train/accuracy",
    "val_loss": "val/loss",
    "val_accuracy": "val/accuracy",
    "learning_rate": "learning_rate",
}


class EpochSink(Protocol):
    """Anything that records one epoch's metrics."""

    def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        """Record ``metrics`` at step ``epoch`` (0-based)."""


class DvcLiveSink:
    """Writes epoch metrics with DVCLive, one step per epoch."""

    def __init__(self, live: Any) -> None:  # noqa: ANN401 - dvclive.Live has no type stubs
        self.live = live

    def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        """Log every metric at the current DVCLive step, then advance the step."""
        for name, value in metrics.items():
            self.live.log_metric(name, value)
        self.live.next_step()


def rename(logs: Mapping[str, Any]) -> dict[str, float]:
    """Keep the known Keras metrics, under tracker names, as plain floats.

    Args:
        logs: Keras' ``logs`` dict at the end of an epoch.

    Returns:
        ``{"train/loss": ..., "val/accuracy": ..., ...}``.
    """
    return {METRIC_NAMES[k]: float(v) for k, v in logs.items() if k in METRIC_NAMES}


class EpochMetrics(keras.callbacks.Callback):  # type: ignore[misc]
    """Fans the metrics of each finished epoch out to every sink."""

    def __init__(self, sinks: Sequence[EpochSink]) -> None:
        super().__init__()
        self.sinks = list(sinks)
        self.history: list[dict[str, float]] = []

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        """Send this epoch's metrics to every sink."""
        metrics = rename(logs or {})
        # Keras 3 does not put the (scheduled) learning rate into ``logs``; read it here.
        metrics["learning_rate"] = float(
            keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)
        )
        self.history.append(metrics)
        for sink in self.sinks:
            sink.log_epoch(epoch, metrics)
