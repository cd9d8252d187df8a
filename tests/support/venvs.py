"""Venvs built from a lock, once per machine: cached on disk by the lock's hash.

A second run on the same machine (or a second xdist worker) reuses the venv instead of installing
hundreds of megabytes again. The installer is uv's ``pip install`` (the same one ``make setup``
uses), which honours the lock exactly.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from filelock import FileLock

BIN = Path(sys.executable).parent


def cache_root() -> Path:
    """Where the tests keep what outlives a run (``MNIST_TEST_CACHE``, else the user's cache)."""
    given = os.environ.get("MNIST_TEST_CACHE")
    return Path(given) if given else Path.home() / ".cache" / "mnist-tests"


def locked_venv(lock: Path) -> Path:
    """A venv holding exactly ``lock`` (no dependencies resolved), built once per lock content.

    Args:
        lock: A fully pinned requirements file.

    Returns:
        The venv's directory.
    """
    base = Path(getattr(sys, "_base_executable", sys.executable))
    key = hashlib.sha256(lock.read_bytes() + str(sys.version_info[:3]).encode()).hexdigest()[:16]
    venv = cache_root() / "venvs" / f"{lock.stem}-{key}"
    venv.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{venv}.lock"):
        if not (venv / ".complete").is_file():
            shutil.rmtree(venv, ignore_errors=True)
            subprocess.run([str(base), "-m", "venv", "--without-pip", str(venv)], check=True)
            subprocess.run(
                [str(BIN / "uv"), "pip", "install", "--quiet", "--no-deps",
                 "--python", str(venv / "bin/python"), "-r", str(lock)],
                check=True, capture_output=True,
            )  # fmt: skip
            (venv / ".complete").touch()
    return venv
