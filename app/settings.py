"""Service settings, from the environment (or ``.env``); documented in ``.env.example``."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from mnist_contracts import paths
from mnist_contracts.env_file import load_env
from mnist_contracts.event_store import DEFAULT_FEEDBACK_TTL_S, DEFAULT_MAXLEN, DEFAULT_PREFIX
from mnist_contracts.lite import SAVEDMODEL, Variant


class Settings(BaseSettings):
    """Everything the service can be told; each field is read from the upper-case env var.

    ``.env`` is exported into the environment first (:func:`mnist_contracts.env_file.load_env`,
    as the pipeline does), so it reaches MLflow's own variables too, not only these fields.
    """

    model_config = SettingsConfigDict(extra="ignore", protected_namespaces=())

    model_dir: Path = paths.MODEL_DIR
    model_uri: str | None = Field(
        default=None, description="MLflow URI, e.g. models:/mnist-classifier@production"
    )
    model_name: str = "mnist"
    model_variant: Variant = Field(
        default=SAVEDMODEL,
        description="savedmodel (TensorFlow) | tflite-float | tflite-int8 (LiteRT, no TensorFlow)",
    )
    metrics_file: Path = paths.METRICS_FILE
    git_commit: str | None = Field(
        default=None,
        description="The commit a baked model's image was built from (make image and CI set it)",
    )
    max_images: int = Field(default=256, gt=0)
    max_content_length: int = Field(default=8 * 1024 * 1024, gt=0)
    max_image_pixels: int = Field(default=40_000_000, gt=0)
    api_key: SecretStr | None = None
    admin_key: SecretStr | None = Field(
        default=None, description="enables the admin routes (X-Admin-Key); off when unset"
    )
    prediction_log: Path = paths.PREDICTION_LOG
    prediction_log_sync: bool = Field(
        default=False, description="Commit each request's log rows before answering it"
    )
    events_url: str | None = Field(
        default=None, description="redis://host:port/db: publish prediction events to a stream"
    )
    events_prefix: str = Field(default=DEFAULT_PREFIX, pattern=r"^[A-Za-z0-9._-]+$")
    events_maxlen: int = Field(
        default=DEFAULT_MAXLEN, gt=0, description="Entries the stream keeps (approximately)"
    )
    events_image_share: float = Field(
        default=1.0, ge=0.0, le=1.0, description="Share of stream events that carry the input"
    )
    events_buffer: int = Field(
        default=10_000, gt=0, description="Events a worker holds while the broker is down"
    )
    events_feedback_ttl_s: int = Field(
        default=DEFAULT_FEEDBACK_TTL_S, gt=0, description="How long an event accepts a label"
    )
    state_dir: Path = paths.STATE_DIR
    reload_poll_s: float = Field(default=1.0, gt=0)
    model_follow_s: float = Field(
        default=30.0, gt=0, description="Seconds between asking where MODEL_URI's alias points"
    )
    tf_threads: int = Field(default=1, gt=0, description="Threads per worker for the model")
    drift_report: Path = paths.DRIFT_REPORT
    drift_poll_s: float = Field(default=5.0, gt=0)
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, root: Path) -> Settings:
        """``root/.env`` exported first (the environment wins), then every field read.

        Args:
            root: The directory holding ``.env`` (the working directory when serving).

        Returns:
            The settings.
        """
        load_env(root)
        return cls()

    @property
    def model_source(self) -> str:
        """What to load: the MLflow URI when set, else the exported directory."""
        return self.model_uri or str(self.model_dir)
