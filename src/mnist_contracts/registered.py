"""Where the SavedModel sits inside a model logged to MLflow (the ``register`` stage's layout).

The pipeline logs the exported SavedModel directory, byte for byte, as the pyfunc artifact
``saved_model``. The service (to serve it) and ``mnist registry reproduce`` (to check its digest)
both read it back through :func:`download_saved_model`. mlflow and yaml are imported only here.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from mnist_contracts.model import NotAModelError, load_serve, read_identity

SAVED_MODEL_ARTIFACT = "saved_model"


def download_saved_model(uri: str, dst: Path | None = None) -> Path:
    """Download a logged or registered model and return the SavedModel directory inside it.

    Args:
        uri: Any MLflow model URI: ``models:/NAME@ALIAS``, ``models:/NAME/VERSION``, ...
        dst: Where to download (default: a temporary directory MLflow chooses).

    Returns:
        The SavedModel directory.
    """
    import mlflow
    import yaml

    if dst is not None:
        dst.mkdir(parents=True, exist_ok=True)
    target = None if dst is None else str(dst)
    local = Path(mlflow.artifacts.download_artifacts(uri, dst_path=target))
    mlmodel = yaml.safe_load((local / "MLmodel").read_text())
    inside = str(mlmodel["flavors"]["python_function"]["artifacts"][SAVED_MODEL_ARTIFACT]["path"])
    return local / inside


@dataclass(frozen=True)
class ModelFunction:
    """A model as a numpy function and its identity digest (see :func:`load_model_function`)."""

    predict: Callable[[npt.NDArray[np.uint8]], npt.NDArray[np.float32]]
    version: str


def load_model_function(source: str) -> ModelFunction:
    """Load a registered (``models:/...``) or exported model for scoring outside the service.

    The files are read into memory and the download deleted, as the service does.

    Raises:
        NotAModelError: If the source holds no usable SavedModel.
        Exception: MLflow's own errors (an unknown alias, an unreachable server).
    """
    if source.startswith("models:/"):
        with tempfile.TemporaryDirectory(prefix="mnist-model-") as tmp:
            directory = download_saved_model(source, Path(tmp))
            return ModelFunction(load_serve(directory), read_identity(directory).digest)
    directory = Path(source)
    return ModelFunction(load_serve(directory), read_identity(directory).digest)


class CandidateError(Exception):
    """The candidate model does not load; the message names it and says why."""


def load_candidate(source: str) -> ModelFunction:
    """Load the model in shadow: the shadow consumer and the shadow report both call this.

    Args:
        source: A ``models:/`` URI (usually ``models:/NAME@candidate``) or an exported directory.

    Raises:
        CandidateError: If it cannot be loaded, with MLflow's or the loader's reason.
    """
    try:
        return load_model_function(source)
    except NotAModelError as err:
        raise CandidateError(str(err)) from None
    except Exception as err:  # noqa: BLE001 - MLflow's errors share no base; name the model
        raise CandidateError(
            f"cannot load candidate {source}: {type(err).__name__}: {err}"
        ) from None
