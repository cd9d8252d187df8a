"""Mirror each pipeline execution into one MLflow run, found again by the model it produced.

``train`` opens the run and tags it with the exported model's content digest
(:data:`~mnist_contracts.tags.DIGEST_TAG`). ``evaluate`` and ``register`` find the run by
that digest, never by a run id in a file: a run id differs on every execution, so it cannot be a
DVC output of a reproducible graph. When DVC restored ``train`` from its run-cache (or a pull
brought the model), the store has no run for the digest yet, and the first later stage that runs
opens one, tagged ``mirror.restored``, so every model that reaches the registry has its run.
A stage that DVC skips runs no code, so nothing is logged twice.

Where runs go: ``MLFLOW_TRACKING_URI`` from the environment (or a ``.env`` file at the repository
root); without it an embedded SQLite store and artifact folder under the repository root. The root
is ``DVC_ROOT`` when DVC sets it, so queued and ``--temp`` experiments, which run in a temporary
copy, still write to the main repository's store. Parallel queue workers (``dvc queue start -j
N``) share that SQLite file: its tables are created or upgraded under a file lock, since two
processes doing it at once fail ("table ... already exists"); later writes wait for SQLite's
own lock.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from filelock import FileLock

from mnist_contracts.env_file import load_env
from mnist_contracts.tags import (
    DIGEST_TAG,
    DVC_BASELINE_TAG,
    DVC_EXP_NAME_TAG,
    GIT_COMMIT_TAG,
    GIT_DIRTY_TAG,
    RESTORED_TAG,
)
from mnist_pipeline.errors import PipelineError

log = logging.getLogger(__name__)

DB_NAME = "mlflow.db"
ARTIFACTS_DIR = "mlartifacts"
PREFLIGHT_TIMEOUT_S = 5.0

# A remote call must fail within bounded time instead of retrying for minutes (MLflow's
# defaults: 7 retries with backoff, 120 s timeout). Users can still override both.
_BOUNDED_HTTP = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}


def repo_root() -> Path:
    """The main repository root: ``DVC_ROOT`` inside DVC, else the working directory."""
    return Path(os.environ.get("DVC_ROOT") or Path.cwd()).resolve()


@dataclass(frozen=True)
class Store:
    """Where MLflow writes: the tracking URI and, for the embedded store, the artifact root."""

    uri: str
    artifact_root: Path | None

    @property
    def remote(self) -> bool:
        """True for an HTTP tracking server."""
        return self.uri.startswith(("http://", "https://"))


def resolve_store(root: Path | None = None) -> Store:
    """Decide where runs go, from the environment, ``.env`` or the embedded default.

    Args:
        root: Repository root (defaults to :func:`repo_root`).

    Returns:
        The store to use.
    """
    root = root or repo_root()
    load_env(root)
    uri = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if uri:
        return Store(uri=uri, artifact_root=None)
    return Store(uri=f"sqlite:///{root / DB_NAME}", artifact_root=root / ARTIFACTS_DIR)


def check_reachable(store: Store, timeout_s: float = PREFLIGHT_TIMEOUT_S) -> None:
    """Fail fast, naming the URI, when a remote tracking server does not answer.

    Args:
        store: The resolved store.
        timeout_s: Connect/read timeout of the health check.

    Raises:
        PipelineError: If the server is unreachable or unhealthy.
    """
    if not store.remote:
        return
    try:
        response = requests.get(store.uri.rstrip("/") + "/health", timeout=timeout_s)
        response.raise_for_status()
    except requests.RequestException as err:
        raise PipelineError(
            f"MLflow tracking server {store.uri} is unreachable ({err.__class__.__name__}); "
            "start it, fix MLFLOW_TRACKING_URI, or unset it to use the embedded store"
        ) from None


def connect(root: Path | None = None) -> Store:
    """Point MLflow at the resolved store after checking it answers.

    Args:
        root: Repository root (defaults to :func:`repo_root`).

    Returns:
        The store in use.
    """
    for key, value in _BOUNDED_HTTP.items():
        os.environ.setdefault(key, value)
    store = resolve_store(root)
    check_reachable(store)
    import mlflow

    mlflow.set_tracking_uri(store.uri)
    if not store.remote:
        prepare_embedded(store)
    return store


def prepare_embedded(store: Store) -> None:
    """Create or upgrade the embedded store's tables, one process at a time.

    MLflow creates (and migrates) a SQLite store's tables when a process first opens it. Two
    pipelines opening a new or older ``mlflow.db`` at once (parallel queued experiments) collide;
    under the lock the first does it and the others find it done.

    Args:
        store: An embedded (``sqlite:///``) store.
    """
    from mlflow import MlflowClient

    database = store.uri.removeprefix("sqlite:///")
    with FileLock(f"{database}.lock", timeout=300):
        client = MlflowClient(tracking_uri=store.uri, registry_uri=store.uri)
        client.search_experiments(max_results=1)  # opens the tracking store: tables, migrations
        client.search_registered_models(max_results=1)  # the registry store, same file


def ensure_experiment(name: str, store: Store) -> str:
    """Return the experiment id, creating it (with an artifact folder for the embedded store).

    Args:
        name: Experiment name from ``tracking.experiment``.
        store: The store in use.

    Returns:
        The experiment id.
    """
    import mlflow

    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        return str(experiment.experiment_id)
    location = (store.artifact_root / name).as_uri() if store.artifact_root else None
    return str(mlflow.create_experiment(name, artifact_location=location))


_OWN_OUTPUTS = (":!dvc.lock", ":!reports")


def _git(*args: str) -> str:
    try:
        result = subprocess.run(
            ["git", *args], capture_output=True, text=True, check=True, cwd=repo_root()
        )
    except (OSError, subprocess.CalledProcessError):
        return ""
    return result.stdout.strip()


def _dirty() -> bool:
    # Outputs that the running pipeline itself rewrites do not make the code "dirty".
    return bool(_git("status", "--porcelain", "--untracked-files=no", "--", ".", *_OWN_OUTPUTS))


def may_promote(promote_branch: str) -> tuple[bool, str]:
    """Whether this pipeline run may move the ``production`` alias, and why (not).

    Only the committed workspace of ``promote_branch`` may: never a DVC experiment (workspace,
    queued or ``--temp``), a pull-request run, another branch, a detached checkout or a
    workspace with uncommitted changes. Those still register their model; moving production
    from them takes ``mnist registry promote``.

    Args:
        promote_branch: ``register.promote_branch``; empty means no run promotes by itself.

    Returns:
        ``(allowed, reason)``.
    """
    experiment = os.environ.get("DVC_EXP_NAME") or os.environ.get("DVC_EXP_BASELINE_REV")
    if experiment:
        return False, f"DVC experiment {os.environ.get('DVC_EXP_NAME') or experiment}"
    if os.environ.get("GITHUB_EVENT_NAME") == "pull_request":
        return False, "a pull-request run"
    if not promote_branch:
        return False, "register.promote_branch is empty"
    branch = _git("rev-parse", "--abbrev-ref", "HEAD")
    if branch != promote_branch:
        where = f"branch {branch}" if branch and branch != "HEAD" else "not on a branch"
        return False, f"{where}, not register.promote_branch ({promote_branch})"
    if _dirty():
        return False, f"uncommitted changes on {promote_branch}"
    return True, f"the committed workspace of {promote_branch}"


# How `mnist tune` names, to the train stage of each trial, the study and the trial it trains
# (mnist_pipeline.tune_trial) and the MLflow run of the study that the trial's run goes under.
TUNE_STORAGE_ENV = "MNIST_TUNE_STORAGE"
TUNE_STUDY_ENV = "MNIST_TUNE_STUDY"
TUNE_TRIAL_ENV = "MNIST_TUNE_TRIAL_ID"
TUNE_TRIAL_NUMBER_ENV = "MNIST_TUNE_TRIAL_NUMBER"
TUNE_PARENT_RUN_ENV = "MNIST_TUNE_PARENT_RUN"
STUDY_TAG = "optuna.study"
TRIAL_TAG = "optuna.trial"


def source_tags() -> dict[str, str]:
    """Tags that trace a run to its code: git commit, dirty flag, DVC experiment name/baseline.

    Returns:
        Tag names to values; DVC tags only inside ``dvc exp run``.
    """
    tags = {
        GIT_COMMIT_TAG: _git("rev-parse", "HEAD") or "unknown",
        GIT_DIRTY_TAG: str(_dirty()).lower(),
    }
    for env, tag in (
        ("DVC_EXP_NAME", DVC_EXP_NAME_TAG),
        ("DVC_EXP_BASELINE_REV", DVC_BASELINE_TAG),
    ):
        if os.environ.get(env):
            tags[tag] = os.environ[env]
    if os.environ.get(TUNE_PARENT_RUN_ENV):  # a trial of `mnist tune`: under the study's run
        tags["mlflow.parentRunId"] = os.environ[TUNE_PARENT_RUN_ENV]
        tags[STUDY_TAG] = os.environ.get(TUNE_STUDY_ENV, "")
        tags[TRIAL_TAG] = os.environ.get(TUNE_TRIAL_NUMBER_ENV, "")
    return tags


class MlflowSink:
    """Writes epoch metrics to the active MLflow run, step = epoch."""

    def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        """Log every metric of this epoch at ``step=epoch``."""
        import mlflow

        mlflow.log_metrics(dict(metrics), step=epoch)


@contextmanager
def pipeline_run(experiment: str, params: Mapping[str, str]) -> Iterator[Any]:
    """Open the pipeline's MLflow run (train stage); tag it with the model's digest at the end.

    Args:
        experiment: Experiment name.
        params: Flattened params to log.

    Yields:
        The active MLflow run; the caller tags it with :func:`tag_model` once it has exported.
    """
    store = connect()
    with _new_run(ensure_experiment(experiment, store), params) as run:
        yield run
    log.info("MLflow run %s in %s (%s)", run.info.run_id, experiment, store.uri)


@contextmanager
def _new_run(
    experiment_id: str, params: Mapping[str, str], tags: Mapping[str, str] | None = None
) -> Iterator[Any]:
    """A new run with the params, the source tags and ``tags``: how every run of ours starts."""
    import mlflow

    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.log_params(dict(params))
        mlflow.set_tags({**source_tags(), **(tags or {})})
        yield run


def tag_model(digest: str) -> None:
    """Tag the active run with the content digest of the model it produced."""
    import mlflow

    mlflow.set_tag(DIGEST_TAG, digest)


def find_model_run(experiment_id: str, digest: str) -> str | None:
    """The newest run of the experiment that produced the model ``digest``, if any.

    Args:
        experiment_id: The experiment to search.
        digest: The model's content digest.

    Returns:
        The run id, or None when this store has no run for the model.
    """
    from mlflow.tracking import MlflowClient

    runs = MlflowClient().search_runs(
        [experiment_id],
        filter_string=f"tags.`{DIGEST_TAG}` = '{digest}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return str(runs[0].info.run_id) if runs else None


@contextmanager
def model_run(experiment: str, digest: str, params: Mapping[str, str]) -> Iterator[Any]:
    """Re-open the run that produced the model ``digest`` (evaluate, register), or open one.

    A new run is opened only when the store has none for the model: ``train`` was skipped or
    restored by DVC (run-cache, pull) in a place whose store never saw it. That run gets the
    params, the source tags and ``mirror.restored=true``.

    Args:
        experiment: Experiment name.
        digest: The model's content digest.
        params: Flattened params, logged only on a newly opened run.

    Yields:
        The active MLflow run.
    """
    import mlflow

    store = connect()
    experiment_id = ensure_experiment(experiment, store)
    run_id = find_model_run(experiment_id, digest)
    if run_id is not None:
        with mlflow.start_run(run_id=run_id) as run:
            yield run
        return
    with _new_run(experiment_id, params, {DIGEST_TAG: digest, RESTORED_TAG: "true"}) as run:
        log.info("no MLflow run for model %s in %s: opened run %s", digest, store.uri,
                 run.info.run_id)  # fmt: skip
        yield run


def run_metrics(run_id: str) -> dict[str, float]:
    """The latest value of every metric logged to ``run_id``."""
    from mlflow.tracking import MlflowClient

    return dict(MlflowClient().get_run(run_id).data.metrics)


def flat_metrics(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Flatten nested numeric metrics to ``{"test/accuracy": ..., "test/per_class/3/recall": ...}``.

    Args:
        metrics: Nested dict of numbers (as in ``reports/metrics.json``).
        prefix: Prefix for nested keys.

    Returns:
        Slash-separated names to floats; non-numeric values are skipped.
    """
    flat: dict[str, float] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flat_metrics(value, f"{name}/"))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            flat[name] = float(value)
    return flat


def log_metrics(metrics: Mapping[str, Any]) -> None:
    """Log nested metrics to the active run, flattened."""
    import mlflow

    mlflow.log_metrics(flat_metrics(metrics))


def log_artifact(path: Path, artifact_path: str) -> None:
    """Log one file to the active run."""
    import mlflow

    mlflow.log_artifact(str(path), artifact_path)


def log_artifacts(directory: Path, artifact_path: str) -> None:
    """Log a directory's files to the active run."""
    import mlflow

    mlflow.log_artifacts(str(directory), artifact_path)
