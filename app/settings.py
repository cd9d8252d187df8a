"""Service settings, from the environment (or ``.env``); documented in ``.env.example``."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything the service can be told; each field is read from the upper-case env var."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", protected_namespaces=())

    model_dir: Path = Path("models/mnist")
    model_uri: str | None = Field(
        default=None, description="MLflow URI, e.g. models:/mnist-classifier@production"
    )
    model_name: str = "mnist"
    metrics_file: Path = Path("reports/metrics.json")
    max_images: int = Field(default=256, gt=0)
    max_content_length: int = Field(default=8 * 1024 * 1024, gt=0)
    max_image_pixels: int = Field(default=40_000_000, gt=0)
    api_key: SecretStr | None = None
    prediction_log: Path = Path("var/predictions.db")
    state_dir: Path = Path("var")
    reload_poll_s: float = Field(default=1.0, gt=0)
    tf_threads: int = Field(default=1, gt=0)
    drift_report: Path = Path("reports/drift/drift.json")
    drift_poll_s: float = Field(default=5.0, gt=0)
    log_level: str = "INFO"

    @property
    def model_source(self) -> str:
        """What to load: the MLflow URI when set, else the exported directory."""
        return self.model_uri or str(self.model_dir)
