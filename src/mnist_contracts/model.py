"""The model's interface and identity: what goes in, what comes out, and which model it is.

An exported model is a TensorFlow SavedModel with one ``serve`` function:
``uint8[N,28,28]`` images (0-255, white digit on black) in, ``float32[N,10]`` probabilities out.
Scaling happens inside the graph, so no caller can disagree with training about preprocessing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

IMAGE_SHAPE = (28, 28)
IMAGE_BYTES = IMAGE_SHAPE[0] * IMAGE_SHAPE[1]
NUM_CLASSES = 10
INPUT_NAME = "images"
OUTPUT_NAME = "probabilities"
SERVE_FUNCTION = "serve"
# Inside the export: the model's identity travels with its bytes, wherever they are copied.
IDENTITY_FILE = Path("assets") / "model.json"

Predict = Callable[[npt.NDArray[np.uint8]], npt.NDArray[np.float32]]


class NotAModelError(Exception):
    """The directory is not an exported model with a ``serve`` function."""


def content_version(directory: Path) -> str:
    """The model's identity: a hash of its variables, the same wherever the files came from.

    The service logs it with every prediction, the drift reference records it, MLflow runs and
    registered versions carry it (tag ``model.digest``).

    Args:
        directory: The SavedModel directory.

    Returns:
        ``sha256:`` and the first 12 hex digits of the variables files' hash.
    """
    digest = hashlib.sha256()
    for file in sorted((directory / "variables").glob("*")):
        digest.update(file.read_bytes())
    return "sha256:" + digest.hexdigest()[:12]


def params_digest(params: Mapping[str, str]) -> str:
    """A hash of the flattened params that produced a model (key order does not matter).

    Args:
        params: Dotted keys to string values, as ``dvc params diff`` shows them.

    Returns:
        ``sha256:`` and the first 12 hex digits.
    """
    text = json.dumps(dict(sorted(params.items())), separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class ModelIdentity:
    """Which model this is, by the one name every part of the system uses for it.

    The service, the prediction log, the drift reference and the monitor all use ``digest``.
    Registry versions, aliases, commits and metrics are labels kept in the registry's tags,
    never part of the model's bytes.
    """

    digest: str
    params_digest: str

    def as_dict(self) -> dict[str, str]:
        """JSON-ready form."""
        return asdict(self)


def write_identity(
    directory: Path, params_digest_: str, lite: Mapping[str, str] | None = None
) -> ModelIdentity:
    """Write ``assets/model.json`` into an export (after its variables are written).

    Args:
        directory: The SavedModel directory.
        params_digest_: :func:`params_digest` of the params that produced the model.
        lite: The sha256 of each TFLite variant written beside it
            (:func:`mnist_contracts.lite.lite_digests`), recorded under ``lite``.

    Returns:
        The identity written.
    """
    identity = ModelIdentity(content_version(directory), params_digest_)
    file = directory / IDENTITY_FILE
    file.parent.mkdir(parents=True, exist_ok=True)
    record: dict[str, object] = {**identity.as_dict(), **({"lite": dict(lite)} if lite else {})}
    file.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return identity


def read_identity(directory: Path) -> ModelIdentity:
    """The identity recorded in an export; computed from its variables for older exports.

    Args:
        directory: The SavedModel directory.

    Returns:
        The identity. An export without ``assets/model.json`` (or with a digest that does not
        match its variables) gets the computed digest and ``params_digest`` "unknown": the
        variables are the model, whatever a file beside them claims.
    """
    digest = content_version(directory)
    try:
        record = json.loads((directory / IDENTITY_FILE).read_text(encoding="utf-8"))
        if record.get("digest") == digest:
            return ModelIdentity(digest, str(record.get("params_digest", "unknown")))
    except (OSError, ValueError, AttributeError):
        pass
    return ModelIdentity(digest, "unknown")


class ServeFunction:
    """An exported model's ``serve`` function as a numpy callable (see :func:`load_serve`)."""

    def __init__(
        self,
        loaded: object,
        concrete: Callable[..., object],
        to_tensor: Callable[[npt.NDArray[np.uint8]], object],
    ) -> None:
        self._loaded = loaded  # owns the restored variables: keep it alive with the function
        self._concrete = concrete
        self._to_tensor = to_tensor

    def __call__(self, images: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        """Class probabilities ``float32[N,10]`` for ``uint8[N,28,28]`` images."""
        out = self._concrete(self._to_tensor(images))
        return np.asarray(out.numpy(), np.float32)  # type: ignore[attr-defined]


def load_serve(directory: Path) -> ServeFunction:
    """Load an exported model and return its ``serve`` function as a numpy callable.

    Calls the concrete function directly: ``tf.function``'s per-call signature binding cost as
    much as the CNN's forward pass for one image, and Keras' ``predict`` sets up a whole loop.

    Args:
        directory: The SavedModel directory.

    Returns:
        ``uint8[N,28,28] -> float32[N,10]``.

    Raises:
        NotAModelError: If the directory holds no SavedModel with a ``serve`` function.
    """
    if not (directory / "saved_model.pb").is_file():
        raise NotAModelError(f"{directory}: no SavedModel found")
    import tensorflow as tf

    loaded = tf.saved_model.load(str(directory))
    if not hasattr(loaded, SERVE_FUNCTION):
        raise NotAModelError(f"{directory}: the SavedModel has no '{SERVE_FUNCTION}' function")
    concrete = getattr(loaded, SERVE_FUNCTION).get_concrete_function(
        tf.TensorSpec([None, *IMAGE_SHAPE], tf.uint8)
    )
    return ServeFunction(loaded, concrete, lambda images: tf.constant(images, dtype=tf.uint8))
