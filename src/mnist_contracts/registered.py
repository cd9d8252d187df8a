"""Where the SavedModel sits inside a model logged to MLflow (the ``register`` stage's layout).

The pipeline logs the exported SavedModel directory, byte for byte, as the pyfunc artifact
``saved_model``. The service (to serve it) and ``mnist-registry reproduce`` (to check its digest)
both read it back through :func:`download_saved_model`. mlflow and yaml are imported only here.
"""

from __future__ import annotations

from pathlib import Path

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
