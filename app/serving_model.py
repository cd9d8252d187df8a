"""The served model: one variant of the export, called directly as a numpy function.

The service knows nothing of training. It loads either the exported directory or a registered
MLflow model (whose artifact *is* that directory), checks it with a warm-up call, and swaps it in
atomically, so a model that fails to load or to warm up never replaces the one serving.

``MODEL_VARIANT`` picks the runtime: ``savedmodel`` (TensorFlow, the reference) calls the
SavedModel's ``serve`` function; ``tflite-float`` and ``tflite-int8`` run the TFLite files the
export carries through LiteRT, and TensorFlow is never imported. Every variant has the model's
one identity digest; the variant is a label beside it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import subprocess
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from mnist_contracts.lite import SAVEDMODEL, LiteModel, Variant, lite_file, read_variant_identity
from mnist_contracts.model import (
    IMAGE_SHAPE,
    NUM_CLASSES,
    NotAModelError,
    Predict,
    load_serve,
)
from mnist_contracts.registered import download_saved_model
from mnist_contracts.tags import GIT_COMMIT_TAG, METRIC_PREFIX

log = logging.getLogger(__name__)


class ModelLoadError(Exception):
    """The model could not be loaded or failed its warm-up check."""


@dataclass(frozen=True)
class ModelInfo:
    """What ``/metadata`` says about the model that answers.

    ``version`` is the model's identity (its variables digest, from ``assets/model.json``): the
    one name the prediction log, the drift reference and the monitor use, whatever the source.
    The registry version, the alias, the commit and the test metrics are labels.
    """

    name: str
    version: str
    source: str
    variant: Variant = SAVEDMODEL
    params_digest: str = "unknown"
    registry_version: str | None = None
    alias: str | None = None
    git_commit: str = "unknown"
    metrics: dict[str, Any] = field(default_factory=dict)
    load_seconds: float = 0.0
    loaded_at: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def registry_facts(uri: str) -> dict[str, Any]:
    """The registry's labels for a ``models:/NAME/VERSION`` or ``models:/NAME@ALIAS`` URI."""
    from mlflow.tracking import MlflowClient

    if not uri.startswith("models:/"):
        return {}
    client = MlflowClient()
    name, _, ref = uri.removeprefix("models:/").partition("@")
    version = (
        client.get_model_version_by_alias(name, ref)
        if ref
        else client.get_model_version(*name.split("/", 1))
    )
    tags = dict(version.tags)
    return {
        "name": version.name,
        "registry_version": str(version.version),
        "alias": ref or None,
        "git_commit": tags.get(GIT_COMMIT_TAG, "unknown"),
        "metrics": {
            k.removeprefix(METRIC_PREFIX): float(v)
            for k, v in tags.items()
            if k.startswith(METRIC_PREFIX)
        },
    }


def alias_target(uri: str) -> str:
    """The version number an alias URI (``models:/NAME@ALIAS``) points at now."""
    from mlflow.tracking import MlflowClient

    name, _, alias = uri.removeprefix("models:/").partition("@")
    return str(MlflowClient().get_model_version_by_alias(name, alias).version)


def is_alias(source: str) -> bool:
    """True for ``models:/NAME@ALIAS``: a source whose target can move."""
    return source.startswith("models:/") and "@" in source


def _checkout_commit(directory: Path, outside: str = "unknown") -> str:
    """The commit of the git checkout a local export sits in (``outside`` outside one)."""
    head = next((d / ".git" for d in directory.resolve().parents if (d / ".git").exists()), None)
    if head is None:
        return outside
    try:
        out = subprocess.run(
            ["git", "-C", str(head.parent), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return outside
    return out.stdout.strip() or outside


def load_runtime(directory: Path, variant: Variant, threads: int = 1) -> Predict:
    """The export's ``variant`` as a numpy function ``uint8[N,28,28] -> float32[N,10]``.

    Raises:
        NotAModelError: If the export has no such variant or it does not load.
    """
    if variant == SAVEDMODEL:
        return load_serve(directory)
    return LiteModel(lite_file(directory, variant), threads)


class ServingModel:
    """A loaded model variant plus what is known about it."""

    def __init__(self, directory: Path, info: ModelInfo, threads: int = 1) -> None:
        try:
            self._serve = load_runtime(directory, info.variant, threads)
        except NotAModelError as err:
            raise ModelLoadError(str(err)) from None
        self.info = info

    def predict(self, images: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        """Class probabilities ``float32[N,10]`` for ``uint8[N,28,28]`` images."""
        return self._serve(images)

    def warm_up(self) -> None:
        """Trace the function for the shapes we serve and check its output is probabilities.

        Raises:
            ModelLoadError: If the output is not ``[N,10]`` finite probabilities summing to 1.
        """
        rng = np.random.default_rng(0)
        for n in (1, 8):
            probs = self.predict(rng.integers(0, 256, (n, *IMAGE_SHAPE), dtype=np.uint8))
            ok = (
                probs.shape == (n, NUM_CLASSES)
                and bool(np.all(np.isfinite(probs)))
                and bool(np.allclose(probs.sum(axis=1), 1.0, atol=1e-3))
            )
            if not ok:
                raise ModelLoadError(f"warm-up check failed: output of shape {probs.shape}")


def load_model(
    source: str,
    name: str,
    metrics_file: Path | None = None,
    variant: Variant = SAVEDMODEL,
    threads: int = 1,
    commit: str | None = None,
) -> ServingModel:
    """Load, warm up and describe a model.

    Args:
        source: A SavedModel directory, or an MLflow ``models:/...`` URI.
        name: The served model's name (the MLflow registered name wins when known).
        metrics_file: For a local directory, the evaluate stage's metrics, if present.
        variant: Which of the export's runtimes serves (:mod:`mnist_contracts.lite`).
        threads: Threads the runtime may use per call.
        commit: For a local directory outside a git checkout (a baked image), the commit it
            was built from.

    Returns:
        A model that passed its warm-up check.

    Raises:
        ModelLoadError: On any failure to load or warm up.
    """
    started = time.perf_counter()
    try:
        if "://" in source or source.startswith("models:/"):
            # Resolve the alias once, then load that pinned version: an alias moved mid-download
            # cannot give a model whose labels say another version.
            facts = registry_facts(source)
            pinned = source
            if facts.get("registry_version") and is_alias(source):
                pinned = f"models:/{facts['name']}/{facts['registry_version']}"
            # The files are only read while loading: a temporary copy, deleted afterwards.
            with tempfile.TemporaryDirectory(prefix="mnist-model-") as tmp:
                directory = download_saved_model(pinned, Path(tmp))
                model = _load_dir(directory, source, name, facts, variant, threads)
        else:
            directory = Path(source)
            facts = {"git_commit": _checkout_commit(directory, commit or "unknown")}
            if metrics_file is not None and metrics_file.is_file():
                facts["metrics"] = served_metrics(json.loads(metrics_file.read_text()), variant)
            model = _load_dir(directory, source, name, facts, variant, threads)
    except ModelLoadError:
        raise
    except Exception as err:
        raise ModelLoadError(f"cannot load {source}: {err.__class__.__name__}: {err}") from err
    seconds = time.perf_counter() - started
    model.info = dataclasses.replace(model.info, load_seconds=seconds, loaded_at=time.time())
    log.info("model loaded", extra={"fields": {"model": model.info.as_dict()}})
    return model


def served_metrics(evaluated: dict[str, Any], variant: Variant) -> dict[str, Any]:
    """The evaluate stage's test figures for the variant that serves.

    The SavedModel's accuracy, loss and macro F1; a TFLite variant's own accuracy and its
    agreement with the SavedModel (``reports/metrics.json`` has both).
    """
    if variant == SAVEDMODEL:
        test = evaluated.get("test", {})
        return {k: test[k] for k in ("accuracy", "loss", "f1_macro") if k in test}
    own = evaluated.get(variant, {})
    return {k: own[k] for k in ("accuracy", "agreement") if k in own}


def _load_dir(
    directory: Path, source: str, name: str, facts: dict[str, Any], variant: Variant,
    threads: int,
) -> ServingModel:  # fmt: skip
    """Load and warm up ``variant`` of the export in ``directory``, labelled with ``facts``."""
    if variant == SAVEDMODEL and not (directory / "saved_model.pb").is_file():
        raise ModelLoadError(f"no SavedModel at {directory}")
    try:
        identity = read_variant_identity(directory, variant)
    except NotAModelError as err:
        raise ModelLoadError(str(err)) from None
    info = ModelInfo(
        name=facts.get("name", name),
        version=identity.digest,
        source=source,
        variant=variant,
        params_digest=identity.params_digest,
        registry_version=facts.get("registry_version"),
        alias=facts.get("alias"),
        git_commit=facts.get("git_commit", "unknown"),
        metrics=facts.get("metrics", {}),
    )
    model = ServingModel(directory, info, threads)
    model.warm_up()
    return model


class ModelHolder:
    """The model currently serving; replaced atomically (a reference swap) on reload."""

    def __init__(self) -> None:
        self.current: ServingModel | None = None
        self._lock = threading.Lock()

    @property
    def ready(self) -> bool:
        """True once a model has loaded and passed warm-up."""
        return self.current is not None

    def swap(self, model: ServingModel) -> None:
        """Make ``model`` the one that answers; requests in flight finish on the old one."""
        with self._lock:
            self.current = model
