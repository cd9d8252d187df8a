"""Stage ``register``: log the exported SavedModel to MLflow, register it, apply the gate.

Every registered version gets the ``candidate`` alias; it becomes ``production`` only when it
passes the quality gate (see :func:`mnist_pipeline.registry.decide`).

Its effect lives in an MLflow store that DVC cannot hash, so ``dvc.yaml`` marks the stage
``always_changed``: it runs on every ``dvc repro``, also when DVC skipped ``train`` or restored it
from the run-cache, and makes sure the current model is registered in the configured store
exactly once. Registration is idempotent by content: a version whose ``model.digest`` tag equals
the model's digest is reused, never duplicated. Its one DVC output, the model card, holds nothing
store-specific (no version numbers), so it is the same bytes on every clone; the version, aliases
and gate decision go to the store (tags and the version's description) and to the log.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import yaml

import mnist_contracts
from mnist_contracts import paths
from mnist_contracts.model import (
    IMAGE_SHAPE,
    INPUT_NAME,
    NUM_CLASSES,
    OUTPUT_NAME,
    read_identity,
)
from mnist_contracts.tags import (
    ACCURACY_TAG,
    DIGEST_TAG,
    DVC_MODEL_MD5_TAG,
    METRIC_PREFIX,
    PARAMS_DIGEST_TAG,
    PROMOTABLE_TAG,
    RUN_ID_TAG,
)
from mnist_pipeline import tracking
from mnist_pipeline.atomic import write_text
from mnist_pipeline.cli import run_stage
from mnist_pipeline.dataset import load_split
from mnist_pipeline.errors import PipelineError
from mnist_pipeline.model_card import registry_section, render_model_card
from mnist_pipeline.params import Params, flatten, load_params
from mnist_pipeline.registry import CANDIDATE, PRODUCTION, Registry, decide

log = logging.getLogger(__name__)

PYFUNC_FILE = Path(__file__).parents[1] / "mlflow_pyfunc.py"


def model_md5(lock_file: Path, model_dir: Path = paths.MODEL_DIR) -> str:
    """The hash DVC recorded in ``dvc.lock`` for the exported model ("unknown" outside DVC).

    Args:
        lock_file: The lock file.
        model_dir: The model output's path as written in ``dvc.yaml``.

    Returns:
        The md5 of the model directory as DVC knows it.
    """
    try:
        lock = yaml.safe_load(lock_file.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return "unknown"
    for out in lock.get("stages", {}).get("train", {}).get("outs", []):
        if out.get("path") == str(model_dir):
            return str(out.get("md5", "unknown"))
    return "unknown"


def log_model(model_dir: Path, name: str, example: Any) -> str:  # noqa: ANN401 - numpy array
    """Log the SavedModel directory as a pyfunc model in the active run and register it.

    Args:
        model_dir: The exported SavedModel.
        name: Registered model name.
        example: A small uint8 input example.

    Returns:
        The new model version.
    """
    import mlflow
    import numpy as np
    import tensorflow as tf
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.uint8), (-1, *IMAGE_SHAPE), INPUT_NAME)]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, NUM_CLASSES), OUTPUT_NAME)]),
    )
    info = mlflow.pyfunc.log_model(
        name="model",
        python_model=str(PYFUNC_FILE),
        artifacts={"saved_model": str(model_dir)},
        signature=signature,
        input_example=example,
        registered_model_name=name,
        # The wrapper imports the contracts package: ship it inside the model.
        code_paths=[str(Path(mnist_contracts.__file__).parent)],
        # Explicit requirements: inferring them would load the model in a subprocess.
        pip_requirements=[
            f"mlflow=={mlflow.__version__}",
            f"tensorflow-cpu=={tf.__version__}",
            f"numpy=={np.__version__}",
        ],
    )
    return str(info.registered_model_version)


def register(params: Params, metrics: dict[str, Any], root: Path) -> dict[str, Any]:
    """Register (or reuse) the model's version in the configured store, set aliases and tags.

    Args:
        params: All params.
        metrics: The ``test`` section of ``reports/metrics.json``.
        root: The repository root (model, prepared data for the input example, ``dvc.lock``).

    Returns:
        The registration record: name, version, run id, aliases and the gate decision.
    """
    import mlflow

    name = params.register.model_name
    model_dir = root / paths.MODEL_DIR
    identity = read_identity(model_dir)
    digest = identity.digest
    accuracy = float(metrics["accuracy"])
    with tracking.model_run(params.tracking.experiment, digest, flatten(params)) as run:
        run_id = run.info.run_id
        if "test/accuracy" not in tracking.run_metrics(run_id):
            # evaluate did not run against this store (skipped or restored by DVC).
            tracking.log_metrics({"test": metrics})
        registry = Registry(name)
        version = registry.version_for_model(digest, run_id)
        if version is None:
            example = load_split("test", root / paths.PREPARED_DIR).x[:2]
            version = log_model(model_dir, name, example)
            log.info("registered %s version %s (model %s)", name, version, digest)
        else:
            log.info("model %s is already %s v%s; reusing it", digest, name, version)
        promotable, why = tracking.may_promote(params.register.promote_branch)
        tags = {
            **tracking.source_tags(),
            PROMOTABLE_TAG: str(promotable).lower(),
            DIGEST_TAG: digest,
            PARAMS_DIGEST_TAG: identity.params_digest,
            DVC_MODEL_MD5_TAG: model_md5(root / paths.LOCK_FILE),
            RUN_ID_TAG: run_id,
            **{f"{METRIC_PREFIX}{k}": str(metrics[k]) for k in ("accuracy", "loss", "f1_macro")},
        }
        for key, value in tags.items():
            registry.client.set_model_version_tag(name, version, key, value)
        production = registry.alias(PRODUCTION)
        production_accuracy = (
            float(production.tags[ACCURACY_TAG])
            if production is not None and ACCURACY_TAG in production.tags
            else None
        )
        if production is not None and production.version == version:
            production, production_accuracy = None, None  # compared against itself: no baseline
        gate = decide(
            accuracy,
            params.register.min_accuracy,
            params.register.tolerance,
            production.version if production else None,
            production_accuracy,
        )
        # candidate only ever names a version that passed the gate; production moves only
        # from a run allowed to promote (see tracking.may_promote).
        if gate.passed:
            registry.set_alias(CANDIDATE, version)
            # With a shadow requirement, production waits for `mnist registry promote`, which
            # checks the candidate's answers on live traffic first.
            if promotable and params.register.shadow_min_events == 0:
                registry.promote(version)
        mlflow.set_tags({"registry.version": version, "registry.gate": str(gate.passed).lower()})
        aliases = {alias: v.version for v in registry.versions() for alias in v.aliases}
    return {
        "name": name,
        "version": version,
        "digest": digest,
        "run_id": run_id,
        "aliases": dict(sorted(aliases.items())),
        "gate": gate.as_dict(),
        "promotion": (
            "waits for a shadow evaluation (register.shadow_min_events): "
            if promotable and params.register.shadow_min_events > 0
            else "may move production: "
            if promotable
            else "does not move production: "
        )
        + why,
    }


def main(root: Path = Path()) -> dict[str, Any]:
    """Register the exported model and write the (store-independent) model card.

    Args:
        root: The repository root; paths come from :mod:`mnist_contracts.paths`.

    Returns:
        The registration record (see :func:`register`).
    """
    params = load_params(root / paths.PARAMS_FILE)
    metrics_file, model_dir = root / paths.METRICS_FILE, root / paths.MODEL_DIR
    try:
        metrics = json.loads(metrics_file.read_text(encoding="utf-8"))["test"]
    except (OSError, ValueError, KeyError):
        raise PipelineError(f"{metrics_file}: missing or malformed; run evaluate") from None
    if not (model_dir / "saved_model.pb").is_file():
        raise PipelineError(f"{model_dir}: no SavedModel found; run the train stage (dvc repro)")
    card = render_model_card(
        params.register.model_name,
        read_identity(model_dir).digest,
        metrics,
        flatten(params),
        params.register.min_accuracy,
    )
    record = register(params, metrics, root)
    Registry(record["name"]).describe(record["version"], card + "\n" + registry_section(record))
    write_text(root / paths.MODEL_CARD_FILE, card)
    log.info(
        "%s v%s (model %s), aliases %s: %s; %s",
        record["name"], record["version"], record["digest"], record["aliases"],
        record["gate"]["reason"], record["promotion"],
    )  # fmt: skip
    return record


if __name__ == "__main__":
    run_stage(main, "register")
