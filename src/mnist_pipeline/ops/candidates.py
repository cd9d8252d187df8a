"""``make candidates``: the seed's Runs 3 and 4, a search and the production candidates compared.

Run 3 is the search: ``mnist tune`` over ``tune.yaml`` (a subset of the training images, a few
epochs). Before its winner is trusted, the search is checked against full-size training: a few
of its trials, spread over its ranking, train again on every training image, and the two
rankings (by validation accuracy) are compared with Kendall's tau.

Run 4 trains the candidates at full size, each once, as a DVC experiment of the ``evaluate``
stage (``cand-NAME``): the default params, the search's best (with the default's epochs on all
the images) and an ensemble of the default's seeds. Every choice is made on validation accuracy;
the official test set scores each candidate once, in its ``evaluate``, and every candidate is
reported, not only the winner. Each is compared with the default through the pull-request
report's statistics (McNemar's exact test, a paired bootstrap interval, the robustness shifts),
its training CPU time (the train stage's ``train_cpu_seconds`` in MLflow) and its serving cost
(size, single-image p50/p99 and predictions per second, as ratios to the default, all measured
in one process). Trials and candidates are experiments: none registers a model or moves an alias.

The outcome is ``reports/candidates.json`` (rendered into ``docs/CANDIDATES.md`` by
``make docs``) and one report per candidate in ``reports/candidates/``. A rerun reuses the
experiments that already exist (``dvc exp remove cand-NAME`` to train one again).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import statistics
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mnist_contracts import paths
from mnist_pipeline import tracking
from mnist_pipeline.atomic import write_text
from mnist_pipeline.errors import PipelineError
from mnist_pipeline.ops import report_cost, tune
from mnist_pipeline.ops.report import Side, resolve_rev, write_report
from mnist_pipeline.ops.report_verdict import PREDICTIONS_FILE, Predictions, decide
from mnist_pipeline.ops.tools import tool
from mnist_pipeline.params import Params, flatten, load_params

log = logging.getLogger(__name__)

CANDIDATES_FILE = paths.REPORTS_DIR / "candidates.json"
CANDIDATES_DIR = paths.REPORTS_DIR / "candidates"
PREFIX = "cand-"
RANK_PREFIX = "rank-"
# The search's settings that make it cheap; a candidate trains without them.
BUDGET_KEYS = ("preprocess.limit", "train.epochs")


@dataclass(frozen=True)
class Candidate:
    """One final candidate: a name, what it is, and its ``-S`` overrides of ``params.yaml``."""

    name: str
    description: str
    overrides: dict[str, Any]

    @property
    def experiment(self) -> str:
        """Its DVC experiment's name."""
        return PREFIX + self.name

    @property
    def command(self) -> str:
        """The command that trains and scores it again."""
        sets = " ".join(f"-S {tune.set_arg(k, v)}" for k, v in self.overrides.items())
        return f"dvc exp run {sets}".rstrip()


def tuned_overrides(best: dict[str, Any], defaults: Params) -> dict[str, Any]:
    """The search's best params at full size: every searched value except the budget's.

    Args:
        best: ``reports/tune.json``'s ``best.params`` (fixed and searched keys).
        defaults: ``params.yaml``.

    Returns:
        The overrides that differ from the defaults (the budget keys take the defaults' values).
    """
    current = flatten(defaults)
    return {
        key: value
        for key, value in best.items()
        if key not in BUDGET_KEYS and str(value) != current.get(key)
    }


def spread_picks(values: Sequence[float], n: int) -> list[int]:
    """Indices of ``n`` entries spread evenly over the ranking of ``values`` (best first).

    A check of the search's ranking needs configurations from its top, middle and bottom: near
    the top alone, differences are within the seed noise.

    Args:
        values: The trials' objective values.
        n: How many to pick (at least 2; fewer when there are fewer values).

    Returns:
        Indices into ``values``, best first, without repeats.
    """
    order = sorted(range(len(values)), key=lambda i: -values[i])
    if len(order) <= n:
        return order
    step = (len(order) - 1) / (n - 1)
    return list(dict.fromkeys(order[round(k * step)] for k in range(n)))


def rank_agreement(subset: Sequence[float], full: Sequence[float]) -> dict[str, Any]:
    """Kendall's tau between the search's values and the same configurations at full size.

    Args:
        subset: Each configuration's value in the search.
        full: The same configurations' validation accuracy at full size.

    Returns:
        ``tau``, its p-value, and whether the best of the search is the best at full size.
    """
    from scipy.stats import kendalltau

    result = kendalltau(subset, full)
    best_subset = max(range(len(subset)), key=lambda i: subset[i])
    best_full = max(range(len(full)), key=lambda i: full[i])
    return {
        "kendall_tau": round(float(result.statistic), 3),
        "p_value": round(float(result.pvalue), 4),
        "same_best": best_subset == best_full,
    }


def ratio(value: float | None, base: float | None) -> float | None:
    """``value / base`` to three decimals, or None when either is missing."""
    if value is None or base is None or base == 0:
        return None
    return round(value / base, 3)


def _git(*args: str) -> str:
    result = subprocess.run([tool("git"), *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise PipelineError(f"git {' '.join(args)} failed: {result.stderr.strip()[-300:]}")
    return result.stdout


def _json_at(ref: str, path: str) -> Any:  # noqa: ANN401 - JSON
    """A JSON file at an experiment's ref, or None when it is not there."""
    text = Side(ref, ref).read(path)
    return None if text is None else json.loads(text)


def run_experiment(name: str, overrides: dict[str, Any], target: str, root: Path) -> str:
    """``dvc exp run --temp -n NAME -S ... TARGET``, unless NAME exists; its ref.

    Raises:
        PipelineError: The experiment failed.
    """
    existing = resolve_rev(name)
    if existing is not None:
        log.info("%s exists (%s): reused", name, existing)
        return existing
    cmd = [tool("dvc"), "exp", "run", "--temp", "-n", name]
    for key, value in overrides.items():
        cmd += ["-S", tune.set_arg(key, value)]
    log.info("training %s: %s", name, " ".join(cmd[1:]))
    started = time.perf_counter()
    done = subprocess.run([*cmd, target], cwd=root, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise PipelineError(f"{name}: dvc exp run failed: {' | '.join(tail)[-400:]}")
    log.info("%s done in %.0f s", name, time.perf_counter() - started)
    ref = resolve_rev(name)
    if ref is None:
        raise PipelineError(f"{name}: the experiment ran but has no ref; see `dvc exp list`")
    return ref


def _mlflow_metrics(names: list[str], root: Path) -> dict[str, dict[str, float]]:
    """The newest MLflow run's metrics of each experiment (tag ``dvc.exp_name``)."""
    from mlflow.tracking import MlflowClient

    tracking.connect(root)
    client = MlflowClient()
    params = load_params(root / paths.PARAMS_FILE)
    experiment = client.get_experiment_by_name(params.tracking.experiment)
    if experiment is None:
        return {}
    found: dict[str, dict[str, float]] = {}
    for run in client.search_runs(
        [experiment.experiment_id], "metrics.train_seconds > 0",
        order_by=["attributes.start_time ASC"],
    ):  # fmt: skip
        name = run.data.tags.get("dvc.exp_name")
        if name in names:
            found[name] = run.data.metrics
    return found


def search(root: Path, trials: int) -> dict[str, Any]:
    """Run 3: the study, run up to ``trials`` trials in all (resumed when it exists)."""
    config = tune.load_config(root / tune.TUNE_FILE)
    report_file = root / tune.TUNE_REPORT
    done = 0
    if report_file.is_file():
        previous = json.loads(report_file.read_text(encoding="utf-8"))
        if previous.get("study") == config.study:
            done = len(previous["trials"])
    if done >= trials:
        log.info("study %s has %d trials: reused", config.study, done)
        report: dict[str, Any] = json.loads(report_file.read_text(encoding="utf-8"))
        return report
    return tune.run_study(config, root, trials=trials - done)


def ranking_check(study: dict[str, Any], picks: int, root: Path) -> dict[str, Any]:
    """Train ``picks`` of the search's complete trials again on every image; compare rankings."""
    complete = [t for t in study["trials"] if t["state"] == "COMPLETE"]
    if len(complete) < 2:
        raise PipelineError("the search has fewer than 2 complete trials: nothing to rank")
    chosen = [complete[i] for i in spread_picks([t["value"] for t in complete], picks)]
    rows = []
    for trial in chosen:
        overrides = {**study["fixed"], **trial["params"], "preprocess.limit": None}
        name = f"{RANK_PREFIX}{study['study']}-{trial['number']}"
        ref = run_experiment(name, overrides, "train", root)
        summary = _json_at(ref, str(paths.TRAIN_METRICS)) or {}
        rows.append({
            "experiment": name,
            "trial": trial["number"],
            "search_value": trial["value"],
            "full_val_accuracy": summary.get("val", {}).get("accuracy"),
            "epochs": trial["params"].get("train.epochs"),
        })  # fmt: skip
    agreement = rank_agreement([r["search_value"] for r in rows],
                               [r["full_val_accuracy"] for r in rows])  # fmt: skip
    return {"rows": rows, **agreement}


def candidates_from(study: dict[str, Any], defaults: Params, members: int) -> list[Candidate]:
    """The final candidates: the default, the search's best at full size, an ensemble."""
    best = study["best"]
    return [
        Candidate("default", "the default params (params.yaml)", {}),
        Candidate(
            "tuned",
            f"the search's best (trial {best['number']}) on every training image, "
            f"{defaults.train.epochs} epochs",
            tuned_overrides(best["params"], defaults),
        ),
        Candidate(
            f"ensemble{members}",
            f"{members} members of the default, seeds {defaults.seed}-"
            f"{defaults.seed + members - 1}, probabilities averaged in the export",
            {"train.ensemble": members},
        ),
    ]


def describe(candidate: Candidate, ref: str, base: Predictions | None,
             alpha: float) -> dict[str, Any]:  # fmt: skip
    """A candidate's row from its experiment's committed outputs (no training, no scoring)."""
    metrics = _json_at(ref, str(paths.METRICS_FILE)) or {}
    summary = _json_at(ref, str(paths.TRAIN_METRICS)) or {}
    shifts = (_json_at(ref, str(paths.ROBUSTNESS_FILE)) or {}).get("robustness", {})
    shifted = [v["accuracy"] for k, v in shifts.items() if k != "identity"]
    row: dict[str, Any] = {
        "name": candidate.name,
        "description": candidate.description,
        "experiment": candidate.experiment,
        "overrides": candidate.overrides,
        "command": candidate.command,
        "baseline_commit": _git("rev-parse", f"{ref}^").strip(),
        "val_accuracy": summary.get("val", {}).get("accuracy"),
        "test_accuracy": metrics.get("test", {}).get("accuracy"),
        "test_errors": metrics.get("test", {}).get("errors"),
        "members": metrics.get("members"),
        "robustness_mean": round(statistics.fmean(shifted), 6) if shifted else None,
        "robustness_worst": min(shifted) if shifted else None,
    }
    record = Predictions.parse(Side(ref, ref).read(PREDICTIONS_FILE))
    if base is not None and record is not None and candidate.name != "default":
        decision = decide(base, record, alpha)
        row["versus_default"] = {
            "verdict": decision.verdict,
            "change": round(decision.change, 6),
            "interval_95": [round(v, 6) for v in decision.interval],
            "mcnemar_p": round(decision.test.pvalue, 6),
            "newly_wrong": decision.test.b,
            "newly_right": decision.test.c,
        }
    return row


def add_costs(rows: list[dict[str, Any]], refs: list[str],
              mlflow_metrics: dict[str, dict[str, float]]) -> None:  # fmt: skip
    """Training CPU time and serving cost of every row, with ratios to the first (the default)."""
    with tempfile.TemporaryDirectory(prefix="mnist-candidates-") as tmp:
        models = []
        for ref, row in zip(refs, rows, strict=True):
            model, why = report_cost.fetch_model(ref, Path(tmp) / row["name"])
            if model is None:
                raise PipelineError(f"{row['name']}: its model is {why}")
            models.append(model)
        costs = report_cost.measure(models)
    base = costs[0]
    base_cpu = mlflow_metrics.get(rows[0]["experiment"], {}).get("train_cpu_seconds")
    for row, cost in zip(rows, costs, strict=True):
        run = mlflow_metrics.get(row["experiment"], {})
        cpu = run.get("train_cpu_seconds")
        row["train"] = {"cpu_seconds": cpu, "wall_seconds": run.get("train_seconds"),
                        "cpu_ratio": ratio(cpu, base_cpu)}  # fmt: skip
        row["serving"] = {
            "size_bytes": cost.size_bytes,
            "single_p50_ms": round(cost.single_ms, 3),
            "single_p99_ms": round(cost.single_p99_ms, 3),
            "single_per_s": round(cost.single_per_s, 1),
            "batch_images_per_s": round(cost.batch_images_per_s, 1),
            "ratios": {
                "size": ratio(cost.size_bytes, base.size_bytes),
                "single_p50": ratio(cost.single_ms, base.single_ms),
                "single_p99": ratio(cost.single_p99_ms, base.single_p99_ms),
                "single_per_s": ratio(cost.single_per_s, base.single_per_s),
                "batch_images_per_s": ratio(cost.batch_images_per_s, base.batch_images_per_s),
            },
        }


def _minutes(names: list[str], runs: dict[str, dict[str, float]]) -> float | None:
    """The experiments' summed training wall time in minutes (None when a run is missing)."""
    seconds = [runs.get(name, {}).get("train_seconds") for name in names]
    return None if None in seconds else round(sum(s or 0.0 for s in seconds) / 60, 1)


def choose(rows: list[dict[str, Any]], noise: float) -> dict[str, Any]:
    """The recommended candidate, on validation accuracy only (the test set does not choose).

    The default (the first row) stays unless another candidate beats it on validation by more
    than ``noise``: on 5,000 validation images one image is 0.02 points, and a reseed alone moves
    accuracy by about two standard deviations of ``make seeds``.

    Args:
        rows: The candidates, the default first.
        noise: The margin a challenger must clear (a fraction; 2 std of the seed spread).

    Returns:
        ``name`` and ``reason``.
    """
    default, best = rows[0], max(rows, key=lambda r: r["val_accuracy"] or 0.0)
    gain = (best["val_accuracy"] or 0.0) - (default["val_accuracy"] or 0.0)
    if best is default or gain <= noise:
        return {"name": default["name"], "reason": (
            f"no candidate beats it on validation by more than the seed noise "
            f"({100 * noise:.2f} points); the best gains {100 * gain:+.2f}"
        )}  # fmt: skip
    return {"name": best["name"], "reason": (
        f"it beats the default on validation by {100 * gain:+.2f} points, beyond the seed noise "
        f"({100 * noise:.2f} points)"
    )}  # fmt: skip


def seed_noise(root: Path) -> float:
    """Two standard deviations of ``reports/seeds.json`` (``make seeds``), or 0 without one."""
    from mnist_pipeline.ops.seeds import SEEDS_FILE

    file = root / SEEDS_FILE
    if not file.is_file():
        return 0.0
    return 2 * float(json.loads(file.read_text(encoding="utf-8"))["std"])


def run(trials: int, picks: int, members: int, root: Path = Path()) -> dict[str, Any]:
    """Runs 3 and 4; write ``reports/candidates.json`` and the candidates' reports.

    Args:
        trials: The search's trials in all (a resumed study adds only the missing ones).
        picks: How many of the search's trials train again at full size for the ranking check.
        members: The ensemble's members.
        root: The repository root.

    Returns:
        The report written.

    Raises:
        PipelineError: Uncommitted changes, or a failed experiment.
    """
    root = root.resolve()
    if _git("status", "--porcelain", "--untracked-files=no").strip():
        raise PipelineError("uncommitted changes: commit them first (candidates run against HEAD)")
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    # Absolute, so that every experiment's temp workspace logs to this repository's store.
    os.environ["MLFLOW_TRACKING_URI"] = tracking.resolve_store(root).uri
    defaults = load_params(root / paths.PARAMS_FILE)
    study = search(root, trials)
    if study.get("best") is None:
        raise PipelineError("the search has no complete trial; see reports/tune.json")
    ranking = ranking_check(study, picks, root)
    candidates = candidates_from(study, defaults, members)
    refs = [run_experiment(c.experiment, c.overrides, "evaluate", root) for c in candidates]
    base = Predictions.parse(Side(refs[0], refs[0]).read(PREDICTIONS_FILE))
    rows = [describe(c, ref, base, defaults.report.alpha)
            for c, ref in zip(candidates, refs, strict=True)]  # fmt: skip
    names = [c.experiment for c in candidates] + [r["experiment"] for r in ranking["rows"]]
    runs = _mlflow_metrics(names, root)
    add_costs(rows, refs, runs)
    for candidate in candidates[1:]:
        write_report(candidates[0].experiment, candidate.experiment,
                     root / CANDIDATES_DIR / candidate.name, cost=False)  # fmt: skip
    report = {
        "machine": {"cores": os.cpu_count(), "platform": platform.platform()},
        "commit": _git("rev-parse", "HEAD").strip(),
        "started_at": started,
        # Training wall time (MLflow's train_seconds; a rerun reuses experiments, so not its own).
        "budget_minutes": {
            "search": round(sum(t["seconds"] or 0 for t in study["trials"]) / 60, 1),
            "ranking_check": _minutes([r["experiment"] for r in ranking["rows"]], runs),
            "candidates": _minutes([c.experiment for c in candidates], runs),
        },
        "search": {
            "study": study["study"],
            "trials": len(study["trials"]),
            "complete": sum(t["state"] == "COMPLETE" for t in study["trials"]),
            "pruned": sum(t["state"] == "PRUNED" for t in study["trials"]),
            "fixed": study["fixed"],
            "best": study["best"],
            "seconds": round(sum(t["seconds"] or 0 for t in study["trials"]), 1),
        },
        "ranking_check": ranking,
        "candidates": rows,
        "chosen_on_validation": choose(rows, seed_noise(root)),
    }
    write_text(root / CANDIDATES_FILE, json.dumps(report, indent=2) + "\n")
    return report


def main(argv: list[str] | None = None) -> int:
    """``python -m mnist_pipeline.ops.candidates [--trials N] [--picks N] [--members N]``."""
    import argparse

    parser = argparse.ArgumentParser(prog="make candidates", description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=12, help="the search's trials in all")
    parser.add_argument("--picks", type=int, default=4, help="trials trained again at full size")
    parser.add_argument("--members", type=int, default=5, help="the ensemble's members")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    try:
        report = run(args.trials, args.picks, args.members)
    except PipelineError as err:
        raise SystemExit(f"make candidates: {err}") from None
    print(json.dumps({r["name"]: r["test_accuracy"] for r in report["candidates"]}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
