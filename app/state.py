"""The per-worker service state every blueprint reaches through ``current_app``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from flask import current_app

from app.metrics import ServiceMetrics
from app.serving_model import ModelHolder, ServingModel
from app.settings import Settings
from mnist_contracts.event_store import EventSink

# The keys of app.extensions: the worker's service state, its reload follower, its drift status.
EXTENSION = "mnist_service"
RELOAD = "mnist_reload"
DRIFT = "mnist_drift"


class NotReadyError(Exception):
    """No model has loaded yet."""


@dataclass(frozen=True)
class Answer:
    """What the model said about a batch, and what the routes need to reply."""

    probs: npt.NDArray[np.float32]  # float32[N,10]
    classes: list[int]
    confidences: list[float]
    model: ServingModel
    event_ids: list[str]


@dataclass
class ServiceState:
    """Settings, the model holder, metrics and the prediction log of one worker."""

    settings: Settings
    holder: ModelHolder
    metrics: ServiceMetrics
    prediction_log: EventSink

    def model(self) -> ServingModel:
        """The model serving now."""
        model = self.holder.current
        if model is None:
            raise NotReadyError
        return model

    def classify(self, images: npt.NDArray[np.uint8]) -> Answer:
        """Probabilities for ``images``, recorded in the metrics and as prediction events.

        Args:
            images: ``uint8[N,28,28]``.

        Returns:
            The probabilities, each image's class and confidence (computed once, here), the
            model that answered and each image's event id.
        """
        model = self.model()
        probs = model.predict(images)
        classes = probs.argmax(axis=1).tolist()
        confidences = probs.max(axis=1).tolist()
        info = model.info
        self.metrics.observe(classes, confidences, info.version, info.variant)
        ids = self.prediction_log.record(info.version, classes, confidences, images, info.variant)
        return Answer(probs, classes, confidences, model, ids)


def state() -> ServiceState:
    """The current app's service state."""
    found: ServiceState = current_app.extensions[EXTENSION]
    return found
