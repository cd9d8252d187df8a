"""Export and load the TensorFlow SavedModel: the one artefact that evaluation and serving use.

The exported ``serve`` function takes ``uint8[N,28,28]`` images (0-255, white on black) and
returns ``float32[N,10]`` probabilities. Callers use that function directly: Keras'
``model.predict`` sets up a whole predict loop per call and is ~150x slower for one image.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import numpy.typing as npt
import tensorflow as tf

from mnist_contracts.lite import lite_digests
from mnist_contracts.model import (
    IMAGE_SHAPE,
    INPUT_NAME,
    NUM_CLASSES,
    NotAModelError,
    load_serve,
    write_identity,
)
from mnist_pipeline.atomic import atomic_path
from mnist_pipeline.compress import write_lite_variants
from mnist_pipeline.errors import PipelineError

INPUT_SPEC = tf.TensorSpec([None, *IMAGE_SHAPE], tf.uint8, name=INPUT_NAME)

Predictor = Callable[[npt.NDArray[np.uint8]], npt.NDArray[np.float32]]


class _Serving(tf.Module):  # type: ignore[misc]
    """The exported object: the model's weights and one ``serve`` function, nothing else.

    Only the weights are tracked: holding the Keras model itself would also save its optimizer
    (Adam's two slots per weight, three times the model's size). Keras' own ``model.export``
    listed variables in an order that changed from run to run; a list attribute saves them by
    index, byte-for-byte the same for the same weights.
    """

    def __init__(self, model: keras.Model) -> None:
        super().__init__(name="mnist_serving")
        self.weights_ = list(model.weights)

        def serve(images: tf.Tensor) -> tf.Tensor:
            return model(images, training=False)

        self.serve = tf.function(serve, input_signature=[INPUT_SPEC], autograph=False)
        members = ensemble_members(model)
        if members:  # an ensemble also answers each member's probabilities, for evaluate

            def each(images: tf.Tensor) -> tf.Tensor:
                return tf.stack([member(images, training=False) for member in members])

            self.members = tf.function(each, input_signature=[INPUT_SPEC], autograph=False)


def ensemble_members(model: keras.Model) -> list[keras.Model]:
    """The members of an ensemble (:func:`mnist_pipeline.models.ensemble`); [] for one model."""
    for layer in model.layers:
        members = list(getattr(layer, "members", None) or [])
        if members and all(isinstance(member, keras.Model) for member in members):
            return members
    return []


def export(model: keras.Model, path: Path, params_digest: str = "unknown") -> None:
    """Write ``model`` as a SavedModel with a ``serve`` endpoint taking uint8 images.

    The directory is byte-stable: the same weights give the same files, so DVC records the same
    hash for the same params and the run-cache can hand the model to another machine. Its
    identity (``assets/model.json``: variables digest and params digest) is written inside, with
    the TFLite variants (``lite/``) and their sha256.

    Args:
        model: A model whose input is ``uint8[N,28,28]``.
        path: Destination directory, replaced atomically.
        params_digest: Digest of the params that produced the model
            (:func:`mnist_contracts.model.params_digest`).
    """
    with atomic_path(path, directory=True) as tmp:
        tf.saved_model.save(_Serving(model), str(tmp))
        stabilise_fingerprint(tmp)
        write_lite_variants(model, tmp)
        write_identity(tmp, params_digest, lite_digests(tmp))


def stabilise_fingerprint(path: Path) -> None:
    """Replace the random ``uuid`` in ``fingerprint.pb`` by one derived from the content.

    TensorFlow writes a fresh random 128-bit id into every export, the only byte that differs
    between two exports of the same weights. Every other field of the fingerprint is already a
    hash of the content; the id becomes one too (of ``saved_model.pb`` and the variables), so the
    file stays a valid fingerprint that ``tf.saved_model.experimental.read_fingerprint`` reads.

    Args:
        path: A SavedModel directory written by ``tf.saved_model.save``.
    """
    from tensorflow.core.protobuf import fingerprint_pb2

    file = path / "fingerprint.pb"
    if not file.is_file():  # older writers have none: nothing random to replace
        return
    digest = hashlib.sha256((path / "saved_model.pb").read_bytes())
    for part in sorted((path / "variables").glob("*")):
        digest.update(part.read_bytes())
    fingerprint = fingerprint_pb2.FingerprintDef()
    fingerprint.ParseFromString(file.read_bytes())
    # TensorFlow's own ids are decimal 128-bit numbers; a fixed width keeps the size constant.
    fingerprint.uuid = f"{int.from_bytes(digest.digest()[:16], 'big'):039d}"
    file.write_bytes(fingerprint.SerializeToString(deterministic=True))


def kernels(path: Path) -> list[npt.NDArray[np.float32]]:
    """The exported model's kernels: every weight of two or more dimensions (no biases, norms)."""
    loaded = tf.saved_model.load(str(path))
    return [np.asarray(w.numpy()) for w in loaded.weights_ if len(w.shape) >= 2]


def load_members(path: Path, batch_size: int = 1000) -> Predictor | None:
    """Each member's probabilities ``float32[M,N,10]`` from an exported ensemble, else None.

    Args:
        path: The SavedModel directory.
        batch_size: Images per call.

    Returns:
        A batched predict function, or None when the export is a single model.
    """
    loaded = tf.saved_model.load(str(path))
    if not hasattr(loaded, "members"):
        return None
    concrete = loaded.members.get_concrete_function(INPUT_SPEC)

    def predict(images: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        parts = [
            concrete(tf.constant(images[i : i + batch_size])).numpy()
            for i in range(0, len(images), batch_size)
        ]
        return np.concatenate(parts, axis=1).astype(np.float32)

    return predict


def load(path: Path, batch_size: int = 1000) -> Predictor:
    """Load the exported SavedModel and return a batched predict function.

    Loading and calling are the contract's (:func:`mnist_contracts.model.load_serve`), the same
    code the service and the MLflow wrapper run.

    Args:
        path: The SavedModel directory.
        batch_size: Images per call of the serving function.

    Returns:
        A function ``uint8[N,28,28] -> float32[N,10]``.

    Raises:
        PipelineError: If the directory is missing or not a SavedModel with ``serve``.
    """
    try:
        serve = load_serve(path)
    except NotAModelError as err:
        raise PipelineError(f"{err}; run the train stage (dvc repro)") from None

    def predict(images: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        parts = [serve(images[i : i + batch_size]) for i in range(0, len(images), batch_size)]
        return np.concatenate(parts) if parts else np.zeros((0, NUM_CLASSES), np.float32)

    return predict
