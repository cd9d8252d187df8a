"""``mnist tune``: an Optuna study over ``tune.yaml``'s search space; each trial a DVC experiment.

- The space (params keys with ranges or choices), the budget (trials, minutes), the params fixed
  for every trial (a subset of the data, fewer epochs) and the pruner live in a committed file,
  so a study is reviewed like code.
- Each trial is ``dvc exp run --temp -n STUDY-N -S key=value ... train``: reproducible from its
  params, listed by ``dvc exp show``, and an MLflow run under the study's parent run. Only the
  ``train`` stage runs: a trial never scores the test set, never registers a model and never
  moves an alias (the test set scores the final candidates once, through ``dvc repro``).
- The sampler is TPE (seeded); the pruner is Optuna's median pruner on each epoch's validation
  accuracy, which the train stage reports to the trial (:mod:`mnist_pipeline.tune_trial`).
- The study lives in SQLite (``optuna.db`` beside the repository's code, git-ignored) or in the
  team database named by ``OPTUNA_STORAGE``, and is resumed when it exists.
- Output: ``reports/tune.json`` (each trial's params, value, state and seconds; the best) and
  the optimisation-history and parameter-importance plots in ``reports/tune/``. Applying the
  best params is a deliberate step: the printed ``dvc exp apply``.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import time
from pathlib import Path
from typing import Any, Literal

from matplotlib.figure import Figure
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mnist_contracts import paths
from mnist_pipeline import tracking
from mnist_pipeline.atomic import write_text
from mnist_pipeline.errors import PipelineError
from mnist_pipeline.ops.tools import tool
from mnist_pipeline.params import (
    Params,
    flatten,
    format_validation_error,
    load_params,
    parse_params,
    read_yaml,
)
from mnist_pipeline.tune_trial import PRUNED_ATTR, PRUNER_ATTR, median_pruner

log = logging.getLogger(__name__)

TUNE_FILE = Path("tune.yaml")
TUNE_REPORT = paths.REPORTS_DIR / "tune.json"
TUNE_PLOTS = paths.REPORTS_DIR / "tune"
STORAGE_ENV = "OPTUNA_STORAGE"
DEFAULT_STORAGE = Path("optuna.db")
PARENT_RUN_ATTR = "mlflow_parent_run_id"


class Dimension(BaseModel):
    """One searched param: ``choices``, or a ``low``..``high`` range (ints when both are ints)."""

    model_config = ConfigDict(extra="forbid")
    choices: list[Any] | None = None
    low: int | float | None = None  # int first: 0..3 stays an int range, 0.0..3.0 is a float one
    high: int | float | None = None
    log: bool = False

    @model_validator(mode="after")
    def _one_kind(self) -> Dimension:
        ranged = self.low is not None and self.high is not None
        if (self.choices is not None) == ranged:
            raise ValueError("give either choices or low and high")
        if ranged and self.low is not None and self.high is not None and self.low >= self.high:
            raise ValueError("low must be smaller than high")
        return self


class PrunerConfig(BaseModel):
    """Optuna's median pruner: stop a trial whose epoch is below the median of earlier trials."""

    model_config = ConfigDict(extra="forbid")
    startup_trials: int = Field(default=3, ge=0)
    warmup_epochs: int = Field(default=1, ge=0)


class TuneConfig(BaseModel):
    """``tune.yaml``."""

    model_config = ConfigDict(extra="forbid")
    study: str = Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9-]*$")
    seed: int = 0
    trials: int | None = Field(default=20, gt=0)
    minutes: float | None = Field(default=None, gt=0)
    objective: Literal["val_accuracy", "cv_mean"] = "val_accuracy"
    fixed: dict[str, Any] = {}
    pruner: PrunerConfig = PrunerConfig()
    space: dict[str, Dimension]

    @model_validator(mode="after")
    def _known_keys(self) -> TuneConfig:
        known = set(flatten(Params()))
        unknown = sorted(k for k in [*self.space, *self.fixed] if k not in known)
        if unknown:
            raise ValueError(f"not params keys: {', '.join(unknown)} (see params.yaml)")
        if self.trials is None and self.minutes is None:
            raise ValueError("give a budget: trials, minutes or both")
        if not self.space:
            raise ValueError("space is empty: name at least one param to search")
        return self


def load_config(path: Path = TUNE_FILE) -> TuneConfig:
    """Read and validate the study's file.

    Raises:
        PipelineError: Missing, not YAML, or invalid (one line naming the bad keys).
    """
    document = read_yaml(path)
    try:
        return TuneConfig.model_validate(document)
    except ValidationError as err:
        raise PipelineError(format_validation_error(err, path)) from None


def storage_url(root: Path) -> str:
    """``OPTUNA_STORAGE`` (a team database), else the repository's SQLite file."""
    return os.environ.get(STORAGE_ENV) or f"sqlite:///{(root / DEFAULT_STORAGE).resolve()}"


def _shown(url: str) -> str:
    """The storage for a report: a path, or the database's scheme and host (no password)."""
    if url.startswith("sqlite:///"):
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.rpartition('@')[2]}"


def suggest(trial: Any, space: dict[str, Dimension]) -> dict[str, Any]:  # noqa: ANN401
    """Draw one value per searched param from the trial.

    Args:
        trial: The Optuna trial.
        space: The search space.

    Returns:
        Params keys to values.
    """
    drawn: dict[str, Any] = {}
    for key, dim in space.items():
        if dim.choices is not None:
            drawn[key] = trial.suggest_categorical(key, dim.choices)
        elif isinstance(dim.low, int) and isinstance(dim.high, int) and not dim.log:
            drawn[key] = trial.suggest_int(key, int(dim.low), int(dim.high))
        else:
            drawn[key] = trial.suggest_float(key, float(dim.low or 0), float(dim.high or 0),
                                             log=dim.log)  # fmt: skip
    return drawn


def check_params(values: dict[str, Any], root: Path) -> None:
    """The trial's params must make a valid ``params.yaml`` (one line when not).

    Raises:
        PipelineError: The combination fails the params model (e.g. warm-up beyond the epochs).
    """
    document = read_yaml(root / paths.PARAMS_FILE)
    for key, value in values.items():
        *sections, last = key.split(".")
        node = document
        for section in sections:
            node = node.setdefault(section, {})
        node[last] = value
    parse_params(document, paths.PARAMS_FILE)


def set_arg(key: str, value: Any) -> str:  # noqa: ANN401 - YAML scalars
    """``key=value`` for ``dvc exp run -S`` (booleans, lists and None as YAML reads them)."""
    plain = not isinstance(value, bool | list) and value is not None
    return f"{key}={value if plain else json.dumps(value)}"


class _TrialFailedError(Exception):
    """A trial whose experiment failed (recorded as FAIL; the study goes on)."""


def _failed(trial: Any, why: str) -> _TrialFailedError:  # noqa: ANN401 - an Optuna Trial
    """Record why the trial failed (``reports/tune.json`` shows it) and return the error."""
    trial.set_user_attr("error", why)
    return _TrialFailedError(f"trial {trial.number}: {why}")


def run_study(
    config: TuneConfig,
    root: Path = Path(),
    trials: int | None = None,
    minutes: float | None = None,
) -> dict[str, Any]:
    """Run (or resume) the study and write its report and plots.

    Args:
        config: The study's file.
        root: The repository root.
        trials: Overrides the file's trial budget.
        minutes: Overrides the file's time budget.

    Returns:
        The report written to ``reports/tune.json``.

    Raises:
        PipelineError: No trial completed.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Absolute: the store's URI reaches the trials (MLflow exports it), which run in a temp dir.
    root = root.resolve()
    url = storage_url(root)
    # A resumed study's sampler is seeded past the trials it has: the same seed again would draw
    # the same first points again (and DVC refuses an experiment identical to an existing one).
    try:
        existing = len(optuna.load_study(study_name=config.study, storage=url).trials)
    except KeyError:  # a new study
        existing = 0
    study = optuna.create_study(
        study_name=config.study,
        storage=url,
        load_if_exists=True,
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=config.seed + existing),
        pruner=median_pruner(config.pruner.model_dump()),
    )
    study.set_user_attr(PRUNER_ATTR, config.pruner.model_dump())  # for the trials' processes
    params = load_params(root / paths.PARAMS_FILE)
    parent = _parent_run(study, params.tracking.experiment, root)
    env_base = {
        **os.environ,
        tracking.TUNE_STORAGE_ENV: url,
        tracking.TUNE_STUDY_ENV: config.study,
        tracking.TUNE_PARENT_RUN_ENV: parent,
    }

    def objective(trial: optuna.Trial) -> float:
        values = {**config.fixed, **suggest(trial, config.space)}
        repeat = _same_params(study, trial)
        if repeat is not None:  # TPE may draw a finished point again: its value, not a rerun
            trial.set_user_attr("experiment", repeat.user_attrs.get("experiment"))
            trial.set_user_attr("repeat_of", repeat.number)
            return float(repeat.value)
        try:
            check_params(values, root)
        except PipelineError as err:  # a drawn combination the params model rejects: this trial
            raise _failed(trial, str(err)) from None
        name = f"{config.study}-{trial.number}"
        trial.set_user_attr("experiment", name)
        cmd = [tool("dvc"), "exp", "run", "--temp", "-n", name]
        for key, value in values.items():
            cmd += ["-S", set_arg(key, value)]
        # Optuna names a trial in its storage by the id it keeps private; the train stage rebuilds
        # the trial from it (optuna.trial.Trial(study, id)), as Optuna's own workers do.
        env = {**env_base, tracking.TUNE_TRIAL_ENV: str(trial._trial_id),
               tracking.TUNE_TRIAL_NUMBER_ENV: str(trial.number)}  # fmt: skip
        started = time.perf_counter()
        done = subprocess.run([*cmd, "train"], cwd=root, env=env, capture_output=True,
                              text=True, check=False)  # fmt: skip
        trial.set_user_attr("seconds", round(time.perf_counter() - started, 1))
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise _failed(trial, f"dvc exp run failed: {tail[0][-300:]}")
        # What the train stage wrote to the trial, read past this process's cache of its own
        # running trials (the cache assumes nobody else writes to them).
        written = optuna.storages.RDBStorage(url).get_trial(trial._trial_id)
        if written.user_attrs.get(PRUNED_ATTR) is not None:
            raise optuna.TrialPruned
        return _value(written, config.objective)

    budget_trials = trials if trials is not None else config.trials
    budget_minutes = minutes if minutes is not None else config.minutes
    study.optimize(
        objective,
        n_trials=budget_trials,
        timeout=None if budget_minutes is None else budget_minutes * 60,
        catch=(_TrialFailedError,),
    )
    report = _report(study, config, url)
    write_text(root / TUNE_REPORT, json.dumps(report, indent=2) + "\n")
    _plots(study, root / TUNE_PLOTS)
    _close_parent(parent, report, root)
    if report["best"] is None:
        raise PipelineError(
            f"study {config.study}: no trial completed (see `dvc exp show` and {TUNE_REPORT})"
        )
    return report


def _same_params(study: Any, trial: Any) -> Any:  # noqa: ANN401 - Optuna objects
    """An earlier complete trial with exactly the trial's params, or None."""
    import optuna

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    return next((t for t in complete if t.params == trial.params), None)


def _value(frozen: Any, objective: str) -> float:  # noqa: ANN401 - an Optuna FrozenTrial
    """The trial's objective: its last epoch's validation accuracy, or its CV mean."""
    if objective == "cv_mean":
        if "cv_mean" not in frozen.user_attrs:
            raise _TrialFailedError(
                f"trial {frozen.number}: no CV mean; set train.cv_folds >= 2 in fixed"
            )
        return float(frozen.user_attrs["cv_mean"])
    if not frozen.intermediate_values:
        raise _TrialFailedError(f"trial {frozen.number}: the train stage reported no epoch")
    return float(frozen.intermediate_values[max(frozen.intermediate_values)])


def _parent_run(study: Any, experiment: str, root: Path) -> str:  # noqa: ANN401
    """The study's MLflow run (created on the first invocation, reused when resumed)."""
    from mlflow.tracking import MlflowClient

    existing = study.user_attrs.get(PARENT_RUN_ATTR)
    store = tracking.connect(root)
    client = MlflowClient()
    if existing:
        client.update_run(existing, status="RUNNING")
        return str(existing)
    experiment_id = tracking.ensure_experiment(experiment, store)
    run = client.create_run(
        experiment_id,
        run_name=f"tune {study.study_name}",
        tags={**tracking.source_tags(), tracking.STUDY_TAG: study.study_name},
    )
    study.set_user_attr(PARENT_RUN_ATTR, run.info.run_id)
    return str(run.info.run_id)


def _close_parent(run_id: str, report: dict[str, Any], root: Path) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    if report["best"] is not None:
        client.log_metric(run_id, "best_value", report["best"]["value"])
        for key, value in report["best"]["params"].items():
            client.set_tag(run_id, f"best.{key}", str(value))
    client.log_artifact(run_id, str(root / TUNE_REPORT), "tune")
    client.set_terminated(run_id, "FINISHED")


def _report(study: Any, config: TuneConfig, url: str) -> dict[str, Any]:  # noqa: ANN401
    trials = [
        {
            "number": t.number,
            "state": t.state.name,
            "value": t.value,
            "params": t.params,
            "epochs_reported": len(t.intermediate_values),
            "seconds": t.user_attrs.get("seconds"),
            "experiment": t.user_attrs.get("experiment"),
            **({"error": t.user_attrs["error"]} if "error" in t.user_attrs else {}),
        }
        for t in study.get_trials(deepcopy=False)
    ]
    complete = [t for t in trials if t["state"] == "COMPLETE"]
    best = max(complete, key=lambda t: t["value"]) if complete else None
    return {
        "study": config.study,
        "storage": _shown(url),
        "objective": config.objective,
        "sampler": f"TPE (seed {config.seed})",
        "pruner": f"median (startup {config.pruner.startup_trials} trials, warm-up "
        f"{config.pruner.warmup_epochs} epochs)",
        "fixed": config.fixed,
        "trials": trials,
        "best": None
        if best is None
        else {
            "number": best["number"],
            "value": best["value"],
            "params": {**config.fixed, **best["params"]},
            "experiment": best["experiment"],
            "apply": f"dvc exp apply {best['experiment']}",
        },
    }


def _plots(study: Any, out: Path) -> None:  # noqa: ANN401
    """Optimisation history and parameter importances as PNGs (importances need 2+ trials)."""
    import matplotlib as mpl

    mpl.use("Agg")
    from optuna.visualization import matplotlib as plots

    from mnist_pipeline.figures import save_png

    out.mkdir(parents=True, exist_ok=True)
    save_png(_figure(plots.plot_optimization_history(study)), out / "history.png", dpi=80)
    try:
        importances = _figure(plots.plot_param_importances(study))
    except (ValueError, RuntimeError) as err:  # too few complete trials to rank the params
        log.info("no importance plot: %s", err)
        (out / "importances.png").unlink(missing_ok=True)
        return
    save_png(importances, out / "importances.png", dpi=80)


def _figure(ax: Any) -> Figure:  # noqa: ANN401 - Optuna returns Axes
    figure = ax.get_figure(root=True)
    if not isinstance(figure, Figure):
        raise TypeError("an Optuna plot without a figure")
    return figure
