"""The TFLite variants of the trained model, written inside the export.

* ``tflite-float``: the same float32 graph for the LiteRT runtime (no TensorFlow to serve it).
* ``tflite-int8``: post-training dynamic-range quantisation: weights stored as int8 (about 4x
  smaller), activations computed in float.

Both are converted from the in-memory Keras model (from the exported SavedModel, TensorFlow 2.21's
converter dropped the weights), scored by ``evaluate`` against the SavedModel, and served by the
service when ``MODEL_VARIANT`` names them (:mod:`mnist_contracts.lite`).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import numpy.typing as npt
import tensorflow as tf

from mnist_contracts.lite import LITE_VARIANTS, Variant, lite_file


def to_tflite(model: keras.Model, variant: Variant) -> bytes:
    """Convert ``model`` to one TFLite variant's flatbuffer.

    Args:
        model: The trained Keras model (uint8 images in, probabilities out).
        variant: ``tflite-float`` or ``tflite-int8``.

    Returns:
        The flatbuffer, the same bytes for the same weights.
    """
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if variant == "tflite-int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    blob: bytes = converter.convert()
    return blob


def write_lite_variants(model: keras.Model, directory: Path) -> dict[str, int]:
    """Write every TFLite variant into an export directory being written.

    Args:
        model: The trained Keras model.
        directory: The (temporary) export directory, before its identity is written.

    Returns:
        Each variant's size in bytes.
    """
    sizes: dict[str, int] = {}
    for variant in LITE_VARIANTS:
        path = lite_file(directory, variant)
        path.parent.mkdir(parents=True, exist_ok=True)
        blob = to_tflite(model, variant)
        path.write_bytes(blob)
        sizes[variant] = len(blob)
    return sizes


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
