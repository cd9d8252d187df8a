"""``mnist tune``: an Optuna study whose trials are DVC experiments and MLflow runs, resumable."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import pytest
import yaml

from tests.support import mnist
from tests.support.project_repo import commit_all, mlflow_query, run

pytestmark = pytest.mark.slow

STUDY = {
    "study": "t",
    "seed": 0,
    "trials": 3,
    "fixed": {"train.epochs": 3},
    # One finished trial is the median to beat from the second epoch on (after one epoch of 15
    # steps on 480 images, a good and a hopeless rate can still look alike).
    "pruner": {"startup_trials": 1, "warmup_epochs": 1},
    "space": {"train.learning_rate": {"low": 1e-7, "high": 0.02, "log": True}},
}


def enqueue(repo: Path, *learning_rates: float) -> None:
    """Fix the first trials' params (Optuna's enqueue_trial), as a user seeds a study."""
    code = (
        "import optuna, sys\n"
        "s = optuna.create_study(study_name='t', storage=sys.argv[1], direction='maximize',"
        " load_if_exists=True)\n"
        "for lr in sys.argv[2:]:\n"
        "    s.enqueue_trial({'train.learning_rate': float(lr)})\n"
    )
    storage = f"sqlite:///{repo / 'optuna.db'}"
    run([sys.executable, "-c", code, storage, *map(str, learning_rates)], repo)


def test_a_study_is_experiments_under_one_mlflow_run_prunes_and_resumes(
    repo_after_repro: Path,
) -> None:
    """Tiny data, 3 epochs a trial: a good rate, then a hopeless one the pruner stops after two
    epochs (its second is below the finished trial's), then one TPE draws."""
    repo = repo_after_repro
    (repo / "tune.yaml").write_text(yaml.safe_dump(STUDY))
    commit_all(repo, "a study")
    enqueue(repo, 0.01, 1e-7)
    out = run(mnist("tune"), repo)
    assert "apply it (deliberately): dvc exp apply t-" in out

    report = json.loads((repo / "reports/tune.json").read_text())
    trials = report["trials"]
    assert [t["number"] for t in trials] == [0, 1, 2]
    assert trials[0]["state"] == "COMPLETE"
    assert trials[1]["state"] == "PRUNED"
    assert trials[1]["epochs_reported"] == 2  # stopped after its second epoch
    assert trials[0]["epochs_reported"] == 3
    best = report["best"]
    assert best["value"] == max(t["value"] for t in trials if t["state"] == "COMPLETE")
    assert best["apply"] == f"dvc exp apply t-{best['number']}"
    assert (repo / "reports/tune/history.png").read_bytes()[:4] == b"\x89PNG"

    # Every trial is a DVC experiment with its params, the train stage's only.
    table = run(["dvc", "exp", "show", "--csv", "--no-pager"], repo, stdout_only=True)
    found = {r["Experiment"]: r for r in csv.DictReader(io.StringIO(table))}
    assert {"t-0", "t-1", "t-2"} <= set(found)
    assert float(found["t-1"]["train.learning_rate"]) == pytest.approx(1e-7)
    # A trial never scores the test set: its test metrics are the base's, carried unchanged.
    base = json.loads((repo / "reports/metrics.json").read_text())["test"]["accuracy"]
    shown = [float(found[f"t-{n}"]["test.accuracy"]) for n in range(3)]
    assert shown == pytest.approx([base] * 3, abs=1e-4)  # dvc exp show rounds to 4 digits

    # ... and an MLflow run under the study's run; no trial registered a model.
    runs = mlflow_query(
        repo,
        "e = c.get_experiment_by_name('mnist-classifier')\n"
        "rs = c.search_runs([e.experiment_id], \"tags.`optuna.study` = 't'\")\n"
        "parent = [r for r in rs if 'mlflow.parentRunId' not in r.data.tags]\n"
        "kids = [r for r in rs if r.data.tags.get('mlflow.parentRunId') == parent[0].info.run_id]\n"
        "print(len(parent), sorted(r.data.tags['optuna.trial'] for r in kids),"
        " len(c.search_model_versions()))",
    )
    assert runs == "1 ['0', '1', '2'] 1"  # one version: the baseline's, before the study

    # The best params make a valid params.yaml; resuming adds trials to the same study.
    params = yaml.safe_load((repo / "params.yaml").read_text())
    for key, value in best["params"].items():
        section, name = key.split(".")
        params[section][name] = value
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    run([sys.executable, "-c", "from mnist_pipeline.params import load_params; load_params()"],
        repo)  # fmt: skip
    run(["git", "checkout", "-q", "params.yaml"], repo)
    run(mnist("tune", "--trials", "1"), repo)
    resumed = json.loads((repo / "reports/tune.json").read_text())
    assert [t["number"] for t in resumed["trials"]] == [0, 1, 2, 3]
    # The resumed sampler draws a new point (reseeded past the study's trials), and it runs.
    assert resumed["trials"][3]["params"] != resumed["trials"][2]["params"]
    assert resumed["trials"][3]["state"] in ("COMPLETE", "PRUNED"), resumed["trials"][3]
