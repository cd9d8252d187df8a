"""The model card: what the registered model is, how good it is, and where it fails."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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
    per_class = "\n".join(
        f"| {c} | {m['precision']:.4f} | {m['recall']:.4f} | {m['support']} |"
        for c, m in metrics["per_class"].items()
    )
    headline = (
        f"| {metrics['accuracy']:.4f} | {metrics['loss']:.4f} | {metrics['f1_macro']:.4f} "
        f"| {metrics['errors']} / {metrics['count']} |"
    )
    settings = "\n".join(f"| `{k}` | {params[k]} |" for k in _TRAINING_KEYS if k in params)
    floor = "passed" if float(metrics["accuracy"]) >= min_accuracy else "not passed"
    return f"""# Model card: {name} `{digest}`

## Model details
- Registered model `{name}`: in any MLflow store the pipeline ran against, this model is the
  version tagged `model.digest` = `{digest}`, a hash of its weights (`mnist registry list`).
- Load with `mlflow.pyfunc.load_model("models:/{name}@production")`.
- A Keras 3 `{params.get("train.arch", "?")}` network exported as a TensorFlow SavedModel. Input:
  `uint8[N,28,28]`, 0-255, white digit on black (MNIST convention). Output: `float32[N,10]`
  probabilities of the digits 0-9. Scaling to 0-1 happens inside the graph.

## Training data
The official MNIST training set (60,000 images): {params.get("preprocess.val_size", "?")} held out
for validation by a seeded stratified split (`preprocess.limit`: {params.get("preprocess.limit")}).
Evaluated on the official 10,000 test images, never seen in training.

| parameter | value |
|---|---|
{settings}

## Metrics (official test set)
| accuracy | loss | macro F1 | errors |
|---|---|---|---|
{headline}

| class | precision | recall | support |
|---|---|---|---|
{per_class}

Quality floor (`register.min_accuracy` {min_accuracy:.4f}): **{floor}**. Whether this model
serves also depends on the store's current production model: see the version's description in
MLflow.

## Intended use
Classifying single handwritten digits that look like MNIST: one centred digit, size-normalised
to about 20x20 pixels inside a 28x28 frame, light strokes on a dark background. A teaching and
reference model for an ML delivery pipeline.

## Limitations
- Anything that is not one MNIST-like digit (letters, several digits, blank images, photos,
  dark-on-light images that were not inverted, off-centre or tiny digits) still receives a
  confident-looking probability over 0-9: the model has no "none of these" class. Check the
  input, and watch the drift report for such inputs in production.
- MNIST's writers are US Census employees and students; other handwriting styles (for example
  the continental 1 and 7) are under-represented and may be less accurate.
- Reported accuracy is for the MNIST test set only.

## Rollback
`production` moves only through the quality gate or by hand. The production version before the
current one holds the alias `previous`:

```bash
mnist registry list                # versions, aliases and test metrics
mnist registry rollback            # production -> previous (run again to undo)
mnist registry promote VERSION     # put a given version in production
```
"""


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
