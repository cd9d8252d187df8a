"""The MLflow pyfunc wrapper around the exported SavedModel (logged as "model from code").

MLflow copies this file into the logged model, and the ``mnist_contracts`` package with it
(``code_paths``), so loading ``models:/NAME@ALIAS`` needs mlflow, numpy and tensorflow, not the
training package. The SavedModel directory is logged as the artifact ``saved_model``, byte for
byte, and ``predict`` calls its ``serve`` function through the same contract as the service.
"""

from pathlib import Path
from typing import Any

import mlflow
import numpy as np

from mnist_contracts.model import IMAGE_SHAPE, INPUT_NAME, ServeFunction, load_serve


class SavedModelClassifier(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
    """``uint8[N,28,28]`` images in, ``float32[N,10]`` class probabilities out."""

    def load_context(self, context: Any) -> None:  # noqa: ANN401 - mlflow's context is untyped
        """Load the SavedModel once per process."""
        self._serve: ServeFunction = load_serve(Path(context.artifacts["saved_model"]))

    def predict(
        self,
        context: Any,  # noqa: ANN401
        model_input: np.ndarray,  # MLflow reads this hint: ndarray means "use the signature"
        params: dict[str, Any] | None = None,
    ) -> np.ndarray:
        """Class probabilities for a batch of uint8 images."""
        if isinstance(model_input, dict):  # the signature names its one input "images"
            model_input = model_input[INPUT_NAME]
        images = np.asarray(model_input, dtype=np.uint8).reshape(-1, *IMAGE_SHAPE)
        return self._serve(images)


mlflow.models.set_model(SavedModelClassifier())
