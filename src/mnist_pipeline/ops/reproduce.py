"""Rebuild a registered model from its recorded git commit and compare three digests.

``mnist registry reproduce VERSION`` answers "does this version still rebuild from its commit?"
(MLflow's users have asked for a way to rerun a registered model's run since mlflow issue 2424):

1. the digest recorded on the version (tag ``model.digest``, set by ``register``);
2. the digest of the artifact the store holds now (downloaded, hashed like the service does);
3. the digest of a rebuild: the version's ``git.commit`` checked out in a temporary ``git
   worktree``, its data restored by DVC (from the cache or the remote, or recomputed), and its
   ``train`` stage forced to run there. The model is never just pulled.

The rebuild logs to a throwaway MLflow store and adds nothing to the DVC cache (``--no-commit``),
so checking a version leaves the team's store and cache as they were.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mnist_contracts import paths
from mnist_contracts.model import content_version
from mnist_contracts.registered import download_saved_model
from mnist_contracts.tags import DIGEST_TAG, GIT_COMMIT_TAG, GIT_DIRTY_TAG
from mnist_pipeline.errors import PipelineError
from mnist_pipeline.ops.remote import configured
from mnist_pipeline.ops.tools import tool
from mnist_pipeline.progress import Steps
from mnist_pipeline.registry import Registry

log = logging.getLogger(__name__)

# What the rebuild runs in the worktree: the data stages as DVC decides (cache, remote or
# recompute), then `train` forced, its outputs kept out of the cache.
DATA_STAGE = "preprocess"
MODEL_STAGE = "train"


@dataclass(frozen=True)
class Digests:
    """The three identities of one registered version."""

    recorded: str
    artifact: str
    rebuilt: str

    def differing(self) -> list[str]:
        """Names of the digests that disagree with the others (empty when all agree)."""
        values = {"recorded": self.recorded, "artifact": self.artifact, "rebuilt": self.rebuilt}
        if len(set(values.values())) == 1:
            return []
        counts = {v: list(values.values()).count(v) for v in values.values()}
        majority = max(counts, key=lambda v: counts[v])
        if counts[majority] == 1:  # all three differ
            return list(values)
        return [name for name, value in values.items() if value != majority]

    def lines(self) -> list[str]:
        """One line per digest, for the terminal."""
        return [
            f"  recorded (tag {DIGEST_TAG}): {self.recorded}",
            f"  artifact (stored model):   {self.artifact}",
            f"  rebuilt (from the commit): {self.rebuilt}",
        ]


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        lines = [line for line in (result.stderr + result.stdout).splitlines() if line.strip()]
        # A stage's own one-line error says more than DVC's "failed to reproduce".
        own = [line for line in lines if ": error: " in line]
        raised = [line for line in lines if re.match(r"\w+(Error|Exception): ", line)]
        dvc = [line for line in lines if line.startswith("ERROR")]
        reason = (own or raised[-1:] or dvc or lines or ["no output"])[0]
        raise PipelineError(f"`{' '.join(cmd[-3:])}` failed in the rebuild: {reason}")
    return result.stdout


def _dvc(*args: str) -> list[str]:
    return [tool("dvc"), *args]


def _has_remote(repo: Path) -> bool:
    try:
        configured(repo)
    except PipelineError:
        return False
    return True


def rebuild(root: Path, commit: str, workdir: Path) -> Path:
    """Check out ``commit`` in a worktree under ``workdir`` and rebuild the model there.

    Args:
        root: The repository (its DVC cache and remote are reused for the data).
        commit: The commit to rebuild.
        workdir: A temporary directory for the worktree and the throwaway MLflow store.

    Returns:
        The rebuilt SavedModel directory (inside the worktree).
    """
    if subprocess.run(
        [tool("git"), "cat-file", "-e", f"{commit}^{{commit}}"], cwd=root, capture_output=True
    ).returncode:
        raise PipelineError(
            f"commit {commit[:12]} is not in this repository: `git fetch` the branch that has it"
        )
    worktree = workdir / "worktree"
    _run([tool("git"), "worktree", "add", "--detach", "--quiet", str(worktree), commit], root)
    local_config = root / ".dvc" / "config.local"
    if local_config.is_file():  # the remote, if one is configured
        shutil.copy2(local_config, worktree / ".dvc" / "config.local")
    cache_dir = _run(_dvc("cache", "dir"), root).strip()
    _run(_dvc("cache", "dir", "--local", cache_dir), worktree)
    env = {
        **{k: v for k, v in os.environ.items() if k not in {"DVC_ROOT", "PYTHONPATH"}},
        # The stages run `python -m ...`: this interpreter's, as `make` puts the venv first.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "MLFLOW_TRACKING_URI": f"sqlite:///{workdir / 'mlflow.db'}",
        "DVC_NO_ANALYTICS": "1",
    }
    log.info("rebuilding %s in %s", commit[:12], worktree)
    # Outputs come from the shared cache (or its run-cache), else the remote, else are
    # recomputed. `--pull` without a remote is an error when a stage is not in dvc.lock.
    pull = ["--pull"] if _has_remote(worktree) else []
    _run(_dvc("repro", *pull, DATA_STAGE), worktree, env)
    _run(_dvc("repro", "--force", "--single-item", "--no-commit", MODEL_STAGE), worktree, env)
    return worktree / paths.MODEL_DIR


def reproduce(registry: Registry, version: str, root: Path) -> Digests:
    """Compare the recorded, stored and rebuilt digests of a registered version.

    Args:
        registry: The registered model.
        version: The version to check.
        root: The git repository holding the version's commit.

    Returns:
        The three digests.

    Raises:
        PipelineError: If the version, its tags or its commit are missing, or the rebuild fails.
    """
    info = registry.get(version)
    commit = info.tags.get(GIT_COMMIT_TAG, "")
    recorded = info.tags.get(DIGEST_TAG)
    if not commit or commit == "unknown" or not recorded:
        raise PipelineError(
            f"version {version} of {registry.name} has no {GIT_COMMIT_TAG} or {DIGEST_TAG} tag: "
            "it was not registered by this pipeline and cannot be rebuilt"
        )
    if info.tags.get(GIT_DIRTY_TAG) == "true":
        log.warning("version %s was trained with uncommitted changes: the rebuild may differ",
                    version)  # fmt: skip
    with (
        tempfile.TemporaryDirectory(prefix="mnist-reproduce-") as tmp,
        Steps("mnist registry reproduce", 2) as step,
    ):
        workdir = Path(tmp)
        step("download the stored model")
        stored = download_saved_model(f"models:/{registry.name}/{version}", workdir / "artifact")
        artifact = content_version(stored)
        step(f"rebuild from {commit[:10]} (dvc repro)")
        try:
            rebuilt = content_version(rebuild(root, commit, workdir))
        finally:
            subprocess.run(
                [tool("git"), "worktree", "remove", "--force", str(workdir / "worktree")],
                cwd=root, capture_output=True, check=False,
            )  # fmt: skip
    return Digests(recorded, artifact, rebuilt)
