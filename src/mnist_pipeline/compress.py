"""Post-training int8 quantisation (dynamic range) of the trained model, via TFLite.

An optional, smaller artefact next to the SavedModel: weights stored as int8 (about 4x smaller),
activations computed in float. Evaluated on the test set like the main model; serving keeps the
SavedModel. The converter works from the in-memory Keras model: from the exported SavedModel,
TensorFlow 2.21's converter dropped the weights.
"""

from __future__ import annotations

import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import numpy.typing as npt
import tensorflow as tf

from mnist_pipeline.atomic import atomic_path
from mnist_pipeline.errors import PipelineError


def to_int8_tflite(model: keras.Model, path: Path) -> int:
    """Convert with dynamic-range int8 quantisation and write the flatbuffer atomically.

    Args:
        model: The trained Keras model (uint8 images in, probabilities out).
        path: Destination ``.tflite``.

    Returns:
        The size in bytes.
    """
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    blob = converter.convert()
    with atomic_path(path) as tmp:
        tmp.write_bytes(blob)
    return len(blob)


class TfliteModel:
    """The quantised model behind the same ``uint8[N,28,28] -> float32[N,10]`` contract."""

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise PipelineError(f"{path}: no compressed model; run the train stage (dvc repro)")
        with warnings.catch_warnings():  # tf.lite.Interpreter is deprecated in favour of LiteRT
            warnings.simplefilter("ignore")
            self._interpreter = tf.lite.Interpreter(model_path=str(path), num_threads=1)
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]
        self._batch = -1
        self.size_bytes = path.stat().st_size

    def predict(self, images: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        """Class probabilities for ``images``."""
        if len(images) != self._batch:
            self._interpreter.resize_tensor_input(self._input, [len(images), 28, 28])
            self._interpreter.allocate_tensors()
            self._batch = len(images)
        self._interpreter.set_tensor(self._input, images)
        self._interpreter.invoke()
        return np.asarray(self._interpreter.get_tensor(self._output), dtype=np.float32)


def single_image_latency_ms(
    predict: Callable[[npt.NDArray[np.uint8]], npt.NDArray[np.float32]],
    image: npt.NDArray[np.uint8],
    repeats: int = 200,
) -> float:
    """Median wall time of one single-image call, after a warm-up.

    Args:
        predict: A batch predict function.
        image: One ``uint8[1,28,28]`` input.
        repeats: Timed calls.

    Returns:
        Milliseconds.
    """
    for _ in range(10):
        predict(image)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        predict(image)
        times.append(time.perf_counter() - started)
    return round(statistics.median(times) * 1000, 3)
