"""The train stage's side of ``mnist tune``: report each epoch to the trial, stop when pruned.

``mnist tune`` runs every trial as ``dvc exp run --temp train`` with the trial named in the
environment (the ``TUNE_*_ENV`` names of :mod:`mnist_pipeline.tracking`). The train stage then
reports each epoch's validation accuracy to that trial in the study's storage and asks the
study's pruner (the one ``mnist tune`` configured, kept in the study) whether to go on: when not,
training stops after that epoch and the experiment ends there (its params and curves stay in
``dvc exp show``); the trial is marked for ``mnist tune``, which records it as pruned. Optuna is
imported only inside a trial.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from mnist_pipeline.tracking import TUNE_STORAGE_ENV, TUNE_STUDY_ENV, TUNE_TRIAL_ENV

log = logging.getLogger(__name__)

MONITOR = "val/accuracy"
PRUNER_ATTR = "pruner"  # the study's pruner settings, for the trials' own processes
PRUNED_ATTR = "pruned_after_epoch"


def in_trial() -> bool:
    """Whether this process trains a trial of ``mnist tune``."""
    return all(os.environ.get(name) for name in (TUNE_STORAGE_ENV, TUNE_STUDY_ENV, TUNE_TRIAL_ENV))


def median_pruner(settings: Mapping[str, int]) -> Any:  # noqa: ANN401 - optuna.pruners
    """Optuna's median pruner from the study's settings (``startup_trials``, ``warmup_epochs``)."""
    import optuna

    return optuna.pruners.MedianPruner(
        n_startup_trials=int(settings.get("startup_trials", 5)),
        n_warmup_steps=int(settings.get("warmup_epochs", 0)),
    )


class TrialReporter:
    """An epoch sink that reports to the Optuna trial and says when the pruner stops it."""

    def __init__(self) -> None:
        import optuna

        name, storage = os.environ[TUNE_STUDY_ENV], os.environ[TUNE_STORAGE_ENV]
        settings = optuna.load_study(study_name=name, storage=storage).user_attrs.get(
            PRUNER_ATTR, {}
        )
        study = optuna.load_study(study_name=name, storage=storage, pruner=median_pruner(settings))
        self.trial = optuna.trial.Trial(study, int(os.environ[TUNE_TRIAL_ENV]))
        self.stop = False

    def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        """Report the epoch's validation accuracy; set :attr:`stop` when the pruner says so."""
        if MONITOR not in metrics or self.stop:
            return
        self.trial.report(metrics[MONITOR], epoch)
        if self.trial.should_prune():
            log.info("trial %d pruned after epoch %d", self.trial.number, epoch + 1)
            self.trial.set_user_attr(PRUNED_ATTR, epoch + 1)
            self.stop = True

    def record(self, name: str, value: float) -> None:
        """Keep a figure of the trial (the cross-validation mean) for ``mnist tune`` to read."""
        self.trial.set_user_attr(name, value)
