"""A temporary git repository copied from the project, and commands run in it as a user would."""

from __future__ import annotations

import ast
import contextlib
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import yaml

from tests.support import PROJECT_ROOT

# What a clone has, minus results: the repro must create those itself.
COPY = [
    "dvc.yaml",
    "params.yaml",
    "src",
    ".dvc/config",
    ".dvc/.gitignore",
    ".dvcignore",
    ".gitignore",
    "data/.gitignore",
    "data/feedback/README.md",  # preprocess's dependency until feedback is collected
]


# What a user's checkout has besides the pipeline: the Makefile, the service, the lock it checks.
FRONT_DOOR = ["Makefile", "app", "gunicorn.conf.py", "requirements.lock", "pyproject.toml"]


def attempt(cmd: list[str], cwd: Path, **extra_env: str) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` in ``cwd`` as a user would, with the project's venv first on PATH."""
    # DVC sets DVC_ROOT itself; the unit-test fixture's value must not leak into the stages.
    base = {k: v for k, v in os.environ.items() if k != "DVC_ROOT"}
    env = {
        **base,
        **extra_env,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(cwd / "src"),  # run the copied code, not the project's
        "DVC_NO_ANALYTICS": "1",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
    }
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)


def run(cmd: list[str], cwd: Path, *, stdout_only: bool = False, **extra_env: str) -> str:
    """Run ``cmd`` (see :func:`attempt`) and fail the test if it fails; returns its output."""
    result = attempt(cmd, cwd, **extra_env)
    assert result.returncode == 0, (
        f"{cmd} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result.stdout if stdout_only else result.stdout + result.stderr


def mlflow_query(repo: Path, code: str, tracking_uri: str | None = None) -> str:
    """Read the tracking store back from a separate process, as another user would."""
    uri = tracking_uri or f"sqlite:///{repo / 'mlflow.db'}"
    program = f"import mlflow\nfrom mlflow.tracking import MlflowClient\nc = MlflowClient()\n{code}"
    return run(
        [sys.executable, "-c", program], repo, stdout_only=True, MLFLOW_TRACKING_URI=uri
    ).strip()


def stages_run(output: str) -> list[str]:
    return re.findall(r"Running stage '(\w+)'", output)


def set_params(repo: Path, **sections: dict[str, object]) -> None:
    path = repo / "params.yaml"
    params = yaml.safe_load(path.read_text())
    for section, values in sections.items():
        params[section].update(values)
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def copy_project(repo: Path, extra: list[str] | None = None) -> Path:
    """Copy the pipeline (and ``extra`` files) into ``repo``, set tiny params, init and commit."""
    for rel in COPY + (extra or []):
        src, dst = PROJECT_ROOT / rel, repo / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(src, dst)
    # What the end-to-end assertions need is a model the whole graph can export, evaluate,
    # register and compare, not a good one: 600 images and one epoch of a CNN with 8 filters.
    # A second epoch changes some answers (the report's flips), and evaluate still scores the
    # full official test set (its 10,000 count is asserted), which the limit does not touch.
    set_params(
        repo,
        preprocess={"limit": 600, "val_size": 0.2},
        train={"epochs": 1, "warmup_epochs": 0, "batch_size": 32, "filters": 8, "units": 32},
    )
    run(["git", "init", "-q", "-b", "main"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "tiny"], repo)
    return repo


def user_clone(origin: Path, dest: Path) -> Path:
    """``git clone`` a repository holding :data:`FRONT_DOOR`, using the project's installed venv.

    The clone's ``.venv`` links to the project's, and the files ``make setup`` watches are dated
    before its stamp, so ``make`` targets run at once instead of installing a venv per clone.
    """
    run(["git", "clone", "-q", str(origin), str(dest)], origin.parent)
    (dest / ".venv").symlink_to(PROJECT_ROOT / ".venv")
    with (dest / ".git/info/exclude").open("a") as exclude:
        exclude.write(".venv\n")  # /.venv/ in .gitignore matches a directory, not a link
    for watched in ("requirements.lock", "pyproject.toml"):
        os.utime(dest / watched, (0, 0))
    return dest


def git(cwd: Path, *args: str) -> None:
    """Run git in ``cwd`` with a fixed identity."""
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
        cwd=cwd, check=True, capture_output=True,
    )  # fmt: skip


def commit_all(repo: Path, message: str) -> None:
    """``git add -A`` and commit everything in ``repo``."""
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", message], repo)


def copy_repo(source: Path, dest: Path) -> Path:
    """A private copy of a repository the pipeline ran in: git, DVC cache, workspace, MLflow store.

    The e2e tests start from one shared run of the pipeline instead of each running it again;
    each test gets its own copy, so none can change what another sees. DVC's ``.dvc/tmp`` (locks,
    queue state) is left behind. The embedded MLflow store records absolute artifact locations:
    they are moved to the copy, so its runs and models never point into ``source``.
    """

    def ignore(directory: str, names: list[str]) -> set[str]:
        return {"tmp"} & set(names) if Path(directory) == source / ".dvc" else set()

    shutil.copytree(source, dest, symlinks=True, ignore=ignore)
    if (dest / "mlflow.db").is_file():
        relocate_store(dest / "mlflow.db", str(source), str(dest))
    return dest


def relocate_store(database: Path, old: str, new: str) -> None:
    """Rewrite every text value in an SQLite MLflow store that names ``old`` to name ``new``."""
    with contextlib.closing(sqlite3.connect(database)) as db, db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for column in [row[1] for row in db.execute(f"PRAGMA table_info('{table}')")]:
                db.execute(
                    f'UPDATE "{table}" SET "{column}" = replace("{column}", ?, ?) '  # noqa: S608
                    f'WHERE typeof("{column}") = \'text\' AND instr("{column}", ?) > 0',
                    (old, new, old),
                )


def registry_state(repo: Path, tracking_uri: str | None = None) -> dict[str, object]:
    """How many versions of mnist-classifier the store holds, and where its aliases point."""
    out = mlflow_query(
        repo,
        "vs = c.search_model_versions(\"name='mnist-classifier'\")\n"
        "m = c.get_registered_model('mnist-classifier') if vs else None\n"
        "print(len(vs)); print({a: str(v) for a, v in sorted(m.aliases.items())} if m else {})",
        tracking_uri,
    )
    count, aliases = out.splitlines()
    return {"versions": int(count), "aliases": ast.literal_eval(aliases)}
