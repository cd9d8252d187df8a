"""What the tests share: real servers, waiting, images, the browser, tiny data, project copies.

Plain modules imported by the tests (and by the benchmark scripts that run the same servers),
never a ``conftest.py`` imported as a module.
"""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def mnist(*args: str) -> list[str]:
    """The ``mnist`` command line for a subprocess: ``python -m mnist_pipeline.commands ARGS``.

    The module form runs the code on ``PYTHONPATH`` (a copied repository's ``src``), as a queued
    experiment runs its own copy.
    """
    import sys

    return [sys.executable, "-m", "mnist_pipeline.commands", *args]


def run_mnist(*args: str) -> int:
    """Run ``mnist ARGS`` in this process (as its console script does); its exit status."""
    from mnist_pipeline.commands import app

    try:
        app(list(args), prog_name="mnist")
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else 0 if done.code is None else 2
    return 0


def tree_digest(directory: Path) -> dict[str, str]:
    """The sha256 of every file under ``directory``, by relative path: "the same bytes"."""
    import hashlib

    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }
