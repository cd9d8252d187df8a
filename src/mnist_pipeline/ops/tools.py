"""The other tools a command runs (``dvc``, ``gunicorn``), found where the command was installed."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from mnist_pipeline.errors import PipelineError


def tool(name: str) -> str:
    """The path of ``name`` beside this interpreter (the venv's), else on PATH.

    ``.venv/bin/mnist`` then works without activating the venv: the ``dvc`` it runs is the one
    installed with it.

    Args:
        name: The executable (``dvc``, ``gunicorn``).

    Returns:
        Its path.

    Raises:
        PipelineError: It is in neither place.
    """
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise PipelineError(f"{name} not found beside {sys.executable} or on PATH: run make setup")
    return found
