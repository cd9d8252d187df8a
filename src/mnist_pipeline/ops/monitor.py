"""``mnist-monitor``: have live digits drifted away from the training digits?

Compares the most recent predictions in the service's log with the reference written by the
``reference`` stage, column by column with Evidently (per-image features, predicted class and
confidence), and writes ``reports/drift/drift.html`` (for people) and ``drift.json`` (for
machines; the service turns it into Prometheus gauges).

Exit status: 0 no drift, 1 drift (so a scheduler can alert), 2 error, 3 too few predictions.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from mnist_contracts import paths
from mnist_contracts.drift import (
    DRIFT,
    ERROR,
    NO_DRIFT,
    TOO_FEW,
    VERDICT_DRIFT,
    VERDICT_NO_DRIFT,
    DriftReport,
)
from mnist_contracts.paths import REFERENCE_DIR
from mnist_contracts.prediction_log import LogError, read_window
from mnist_pipeline.atomic import atomic_path, write_text
from mnist_pipeline.drift_features import FEATURES, OUTPUTS, drift_frame
from mnist_pipeline.errors import PipelineError
from mnist_pipeline.params import PARAMS_FILE, MonitorParams, load_params

log = logging.getLogger(__name__)

LOG_FILE = paths.PREDICTION_LOG
OUT_DIR = paths.DRIFT_DIR


class TooFewError(PipelineError):
    """Not enough live predictions for a verdict."""


@dataclass(frozen=True)
class Current:
    """The live window: its features and where it came from."""

    frame: pd.DataFrame
    model_version: str
    first_ts: float
    last_ts: float


def load_reference(directory: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The reference features and facts (model version, size)."""
    try:
        frame = pd.read_csv(directory / "features.csv", dtype={"predicted_class": str})
        info: dict[str, Any] = json.loads((directory / "reference.json").read_text())
    except FileNotFoundError:
        raise PipelineError(f"{directory}: no reference; run `dvc repro reference`") from None
    except (ValueError, pd.errors.ParserError) as err:
        raise PipelineError(f"{directory}: corrupt reference ({err}); re-run dvc repro") from None
    missing = [c for c in (*FEATURES, *OUTPUTS) if c not in frame.columns]
    if missing:
        raise PipelineError(f"{directory}: reference lacks columns {missing}; re-run dvc repro")
    return frame, info


def load_current(path: Path, window: int, model_version: str | None) -> Current:
    """The most recent ``window`` predictions of one model version from the service's log.

    Args:
        path: The SQLite prediction log.
        window: How many of the latest predictions to take.
        model_version: Only predictions of this version (None: the newest version in the log).

    Raises:
        PipelineError: If the log is missing, corrupt, empty or has no row for the version.
    """
    try:
        rows = read_window(path, window, model_version)
    except LogError as err:
        raise PipelineError(str(err)) from None
    frame = drift_frame(rows.images, rows.predicted_class, rows.confidence)
    times = rows.ts.tolist() or [0.0]
    return Current(frame, rows.model_version, min(times), max(times))


def run_report(current: pd.DataFrame, reference: pd.DataFrame, params: MonitorParams) -> Any:  # noqa: ANN401 - Evidently's Snapshot
    """The Evidently data-drift report, current first (Evidently 0.7's order)."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(
        numerical_columns=[*FEATURES, "confidence"], categorical_columns=["predicted_class"]
    )
    preset = DataDriftPreset(
        drift_share=params.drift_share,
        num_method=params.num_method,
        cat_method=params.cat_method,
        threshold=params.threshold,
        per_column_method=params.per_column_method or None,
        per_column_threshold=params.per_column_threshold or None,
    )
    return Report([preset], include_tests=True).run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )


def summarise(snapshot_json: dict[str, Any]) -> dict[str, Any]:
    """Verdict, drifted share, and per-column statistic, method, threshold and drift flag."""
    failed = {
        t["metric_config"]["metric_id"]
        for t in snapshot_json.get("tests", [])
        if t.get("status") == "FAIL"
    }
    columns: dict[str, Any] = {}
    share, drift = 0.0, False
    for metric in snapshot_json["metrics"]:
        config = metric["config"]
        if config["type"].endswith("DriftedColumnsCount"):
            share = float(metric["value"]["share"])
            drift = metric["id"] in failed
        elif config["type"].endswith("ValueDrift"):
            columns[config["column"]] = {
                "method": config["method"],
                "statistic": float(metric["value"]),
                "threshold": config["threshold"],
                "drifted": metric["id"] in failed,
            }
    return {"drift": drift, "drifted_share": round(share, 4), "columns": columns}


def main(argv: list[str] | None = None) -> int:
    """Compare the live window with the reference; write the reports.

    Args:
        argv: Command-line arguments (defaults to ``sys.argv[1:]``).

    Returns:
        The exit status: 0 no drift, 1 drift, 3 too few predictions (errors raise).
    """
    parser = argparse.ArgumentParser(prog="mnist-monitor", description=__doc__)
    parser.add_argument("--log", type=Path, default=LOG_FILE, help="the service's prediction log")
    parser.add_argument("--reference", type=Path, default=REFERENCE_DIR)
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    parser.add_argument("--window", type=int, help="latest N predictions (default monitor.window)")
    parser.add_argument("--model-version", help="default: the reference's model version")
    parser.add_argument("--params", type=Path, default=PARAMS_FILE)
    args = parser.parse_args(argv)
    params = load_params(args.params).monitor
    reference, info = load_reference(args.reference)
    version = args.model_version or info.get("model_version")
    current = load_current(args.log, args.window or params.window, version)
    n = len(current.frame)
    if n < params.min_samples:
        raise TooFewError(
            f"only {n} predictions of model {current.model_version} in {args.log}; at least "
            f"{params.min_samples} (monitor.min_samples) are needed for a verdict"
        )
    snapshot = run_report(current.frame, reference, params)
    summary = summarise(json.loads(snapshot.json()))
    drifted = [c for c, v in summary["columns"].items() if v["drifted"]]
    result: DriftReport = {
        "verdict": VERDICT_DRIFT if summary["drift"] else VERDICT_NO_DRIFT,
        "drift": bool(summary["drift"]),
        "drifted_share": float(summary["drifted_share"]),
        "columns": summary["columns"],
        "drifted_columns": drifted,
        "model_version": current.model_version,
        "window": {
            "from": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(current.first_ts)),
            "to": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(current.last_ts)),
        },
        "sample_sizes": {"current": n, "reference": len(reference)},
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.out / "drift.html") as tmp:
        snapshot.save_html(str(tmp))
    write_text(args.out / paths.DRIFT_REPORT.name, json.dumps(result, indent=2) + "\n")
    named = f" ({', '.join(drifted)})" if drifted else ""
    print(
        f"{result['verdict']}: {len(drifted)} of {len(summary['columns'])} columns drifted"
        f"{named}; {n} live vs {len(reference)} reference; report {args.out / 'drift.html'}"
    )
    return DRIFT if summary["drift"] else NO_DRIFT


def run_once(argv: list[str] | None = None) -> int:
    """One verdict as an exit status: 0/1/3, or 2 with a one-line error on stderr."""
    try:
        return main(argv)
    except TooFewError as err:
        print(f"mnist-monitor: {err}", file=sys.stderr)
        return TOO_FEW
    except PipelineError as err:
        print(f"mnist-monitor: error: {err}", file=sys.stderr)
        return ERROR
    except Exception as err:
        # Schedulers and alerts read the status: an internal failure is 2, like any error.
        log.debug("mnist-monitor crashed", exc_info=True)
        print(f"mnist-monitor: internal error: {type(err).__name__}: {err}".splitlines()[0],
              file=sys.stderr)  # fmt: skip
        return ERROR


def entry() -> None:
    """Console-script entry point: exit 0/1/2/3, one-line errors.

    ``--every SECONDS`` runs it on a schedule instead (the compose stack's monitor service):
    one verdict per period, each status printed, never exiting on a failed run.
    """
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    schedule = argparse.ArgumentParser(add_help=False)
    schedule.add_argument("--every", type=float, help="run every SECONDS (default: once)")
    known, rest = schedule.parse_known_args()
    if known.every is None:
        sys.exit(run_once(rest))
    if known.every <= 0:
        print("mnist-monitor: error: --every must be a positive number of seconds", file=sys.stderr)
        sys.exit(ERROR)
    while True:
        code = run_once(rest)
        print(f"mnist-monitor: exit status {code}; next run in {known.every:g} s", flush=True)
        time.sleep(known.every)


if __name__ == "__main__":
    entry()
