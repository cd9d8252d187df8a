"""The MLflow pyfunc wrapper around the exported SavedModel (logged as "model from code").

MLflow copies this file into the logged model, so loading ``models:/NAME@ALIAS`` needs only
mlflow, numpy and tensorflow, not this package. The SavedModel directory is logged as the
artifact ``saved_model``, byte for byte, and ``predict`` calls its ``serve`` function directly.
"""

from typing import Any

import mlflow
import numpy as np
import tensorflow as tf


class SavedModelClassifier(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
    """``uint8[N,28,28]`` images in, ``float32[N,10]`` class probabilities out."""

    def load_context(self, context: Any) -> None:  # noqa: ANN401 - mlflow's context is untyped
        """Load the SavedModel once per process."""
        self._model = tf.saved_model.load(context.artifacts["saved_model"])

    def predict(
        self,
        context: Any,  # noqa: ANN401
        model_input: np.ndarray,  # MLflow reads this hint: ndarray means "use the signature"
        params: dict[str, Any] | None = None,
    ) -> np.ndarray:
        """Class probabilities for a batch of uint8 images."""
        if isinstance(model_input, dict):  # the signature names its one input "images"
            model_input = model_input["images"]
        images = np.asarray(model_input, dtype=np.uint8).reshape(-1, 28, 28)
        return np.asarray(self._model.serve(tf.constant(images)).numpy())


mlflow.models.set_model(SavedModelClassifier())
