"""How settings are read: the environment, and a ``.env`` file that never overrides it."""

from __future__ import annotations

from pathlib import Path

from dotenv import load_dotenv

ENV_FILE = ".env"


def load_env(root: Path) -> None:
    """Export ``root/.env`` into the environment; variables already set win.

    The pipeline and the service both call this, so ``MLFLOW_TRACKING_URI`` in ``.env`` reaches
    MLflow in either, not only the fields of one settings class.

    Args:
        root: The directory holding ``.env`` (the repository root, or the service's).
    """
    load_dotenv(root / ENV_FILE, override=False)
