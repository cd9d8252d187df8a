"""The model card: what the registered model is, how good it is, and where it fails."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2

TEMPLATES = Path(__file__).parent / "templates"

_TRAINING_KEYS = (
    "seed",
    "preprocess.val_size",
    "preprocess.limit",
    "train.arch",
    "train.epochs",
    "train.batch_size",
    "train.optimizer",
    "train.learning_rate",
    "train.lr_schedule",
    "train.dropout",
    "train.label_smoothing",
    "train.augment.max_shift",
)


def render_model_card(
    name: str,
    digest: str,
    metrics: Mapping[str, Any],
    params: Mapping[str, str],
    min_accuracy: float,
) -> str:
    """Render ``reports/model_card.md``: the model itself, nothing that depends on a store.

    Version numbers, aliases and the comparison with the serving model belong to one particular
    MLflow store; they go into that store's version description (:func:`registry_section`), so
    the committed card is the same bytes on every clone.

    Args:
        name: The registered model name.
        digest: The model's content digest.
        metrics: The ``test`` section of ``reports/metrics.json``.
        params: Flattened params.
        min_accuracy: ``register.min_accuracy``, the absolute floor of the quality gate.

    Returns:
        Markdown text.
    """
    return _template().render(
        name=name, digest=digest, metrics=metrics, params=params, min_accuracy=min_accuracy,
        training_keys=_TRAINING_KEYS,
    )  # fmt: skip


def _template() -> jinja2.Template:
    """The card's template (``templates/model_card.md.j2``): text in one file, logic here."""
    environment = jinja2.Environment(  # nosec B701
        loader=jinja2.FileSystemLoader(TEMPLATES),
        undefined=jinja2.StrictUndefined,  # a misspelt name fails instead of printing nothing
        autoescape=False,  # the card is Markdown, not HTML: nothing to escape  # noqa: S701
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    return environment.get_template("model_card.md.j2")


def registry_section(record: Mapping[str, Any]) -> str:
    """The store-specific part of a registered version's description: version, aliases, gate.

    Args:
        record: The registration record (name, version, aliases, gate).

    Returns:
        Markdown text to append to the model card in the version's MLflow description.
    """
    version = record["version"]
    aliases = ", ".join(f"`{a}`" for a, v in record["aliases"].items() if v == version) or "none"
    gate = record["gate"]
    verdict = "passed" if gate["passed"] else "not passed"
    return (
        f"## In this registry\n"
        f"Version {version} of `{record['name']}` (MLflow run `{record['run_id']}`); aliases on "
        f"this version: {aliases}.\n\nQuality gate: **{verdict}**, {gate['reason']}.\n"
        + (f"\nPromotion: this run {record['promotion']}.\n" if "promotion" in record else "")
    )
