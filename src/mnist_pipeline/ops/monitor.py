"""``mnist monitor``: have live digits drifted away, and is the model still right?

Compares the most recent predictions with the reference written by the ``reference`` stage,
column by column with Evidently (per-image features, predicted class and confidence), and writes
``reports/drift/drift.html`` (for people) and ``drift.json`` (for machines; the service turns it
into Prometheus gauges). The predictions come from the service's embedded log or, for many
replicas, from the Redis event stream (``--events redis://...``); the same window either way.

Where true labels came back (``POST /feedback``), it also reports live accuracy and per-class
recall on the window's labelled events (Evidently's classification preset, ``classification.html``)
and whether accuracy fell below ``monitor.min_live_accuracy``.

Exit status: 0 no drift, 1 drift (so a scheduler can alert), 2 error, 3 too few predictions.
"""

from __future__ import annotations

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
    SEVERITY_CODES,
    TOO_FEW,
    VERDICT_DRIFT,
    VERDICT_NO_DRIFT,
    DriftReport,
    LiveQuality,
    Severity,
)
from mnist_contracts.event_store import DEFAULT_PREFIX, EventSource, LogError, Window, open_events
from mnist_contracts.event_store.redis_stream import RedisEvents
from mnist_contracts.paths import REFERENCE_DIR
from mnist_pipeline.atomic import atomic_path, write_text
from mnist_pipeline.drift_features import FEATURES, OUTPUTS, drift_frame
from mnist_pipeline.errors import PipelineError
from mnist_pipeline.params import PARAMS_FILE, MonitorParams, load_params
from mnist_pipeline.performance import Estimate, estimate_accuracy

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
    window: Window


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


def load_current(source: EventSource, window: int, model_version: str | None) -> Current:
    """The most recent ``window`` predictions of one model version, from the log or the stream.

    Drift is measured on the events that carry their input (``EVENTS_IMAGE_SHARE`` may keep
    only a share); every event of the window counts for live accuracy.

    Args:
        source: The SQLite prediction log or the event stream (:func:`open_events`).
        window: How many of the latest predictions to take.
        model_version: Only predictions of this version (None: the newest version).

    Raises:
        PipelineError: If the source is missing, corrupt, empty or has no row for the version.
    """
    try:
        rows = source.window(window, model_version)
    except LogError as err:
        raise PipelineError(str(err)) from None
    keep = rows.has_image
    frame = drift_frame(rows.images, rows.predicted_class[keep], rows.confidence[keep])
    times = rows.ts.tolist() or [0.0]
    return Current(frame, rows.model_version, min(times), max(times), rows)


def live_quality(
    window: Window, params: MonitorParams
) -> tuple[LiveQuality, Any | None]:  # Evidently's Snapshot
    """Accuracy and per-class recall on the window's labelled events (Evidently's preset).

    Args:
        window: The live window with its labels.
        params: ``min_live_accuracy`` and ``min_labels``.

    Returns:
        The figures, and the classification report (None below ``min_labels``).
    """
    ids = [i for i in window.event_ids if i in window.labels]
    quality: LiveQuality = {
        "labelled": len(ids),
        "accuracy": None,
        "recall_per_class": {},
        "min_accuracy": params.min_live_accuracy,
        "min_labels": params.min_labels,
        "below_min": False,
    }
    if len(ids) < params.min_labels:
        return quality, None
    from evidently import DataDefinition, Dataset, MulticlassClassification, Report
    from evidently.presets import ClassificationPreset

    predicted = dict(zip(window.event_ids, window.predicted_class.tolist(), strict=True))
    frame = pd.DataFrame({
        "label": [str(window.labels[i]) for i in ids],
        "predicted_class": [str(predicted[i]) for i in ids],
    })  # fmt: skip
    definition = DataDefinition(
        categorical_columns=["label", "predicted_class"],
        classification=[
            MulticlassClassification(target="label", prediction_labels="predicted_class")
        ],
    )
    snapshot = Report([ClassificationPreset()]).run(
        Dataset.from_pandas(frame, data_definition=definition), None
    )
    values = {m["config"]["type"].rsplit(":", 1)[-1]: m["value"]
              for m in json.loads(snapshot.json())["metrics"]}  # fmt: skip
    accuracy = float(values["Accuracy"])
    recall = values.get("RecallByLabel", {})
    quality["accuracy"] = round(accuracy, 6)
    quality["recall_per_class"] = {
        str(c): (round(float(recall[str(c)]), 6) if str(c) in recall else None) for c in range(10)
    }
    quality["below_min"] = accuracy < params.min_live_accuracy
    return quality, snapshot


def grade(
    drift: bool,
    live: LiveQuality,
    estimate: Estimate,
    reference_accuracy: float,
    params: MonitorParams,
) -> Severity:
    """The window's severity by harm, not by drift alone.

    ``page``: the model is wrong too often: live accuracy (enough labels) or the estimated
    accuracy is below ``monitor.min_live_accuracy``, or input drift comes with an estimated
    accuracy more than ``monitor.harm_margin`` below the reference's. ``ticket``: input drift
    with no estimated harm (a new population of writers the model reads as well). ``none``.

    Args:
        drift: The drift verdict.
        live: Accuracy on the window's labelled events.
        estimate: Accuracy estimated from the calibrated confidences.
        reference_accuracy: The estimate on the reference (validation images).
        params: The monitor's params.

    Returns:
        Level, code and a one-line reason.
    """
    floor = params.min_live_accuracy
    drop = reference_accuracy - estimate.accuracy
    seen = f"estimated accuracy {estimate.accuracy:.4f} (reference {reference_accuracy:.4f})"
    if live["accuracy"] is not None and live["below_min"]:
        labelled = f"live accuracy {live['accuracy']:.4f} on {live['labelled']} labelled events"
        level, why = "page", f"{labelled} is below monitor.min_live_accuracy {floor}"
    elif estimate.accuracy < floor:
        level, why = "page", f"{seen} is below monitor.min_live_accuracy {floor}"
    elif drift and drop > params.harm_margin:
        level, why = "page", (f"input drift, and the {seen} fell by more than "
                              f"monitor.harm_margin {params.harm_margin}")  # fmt: skip
    elif drift:
        level, why = "ticket", f"input drift with no estimated harm beyond the margin: {seen}"
    else:
        level, why = "none", f"no drift; {seen}"
    return {"level": level, "code": SEVERITY_CODES[level], "reason": why}


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


@dataclass(frozen=True)
class CheckOptions:
    """What one drift check reads and where it writes."""

    events: str = str(LOG_FILE)
    events_prefix: str = DEFAULT_PREFIX
    reference: Path = REFERENCE_DIR
    out: Path = OUT_DIR
    window: int | None = None
    model_version: str | None = None
    params: Path = PARAMS_FILE
    as_json: bool = False  # print drift.json instead of the lines for people


def check(args: CheckOptions) -> int:
    """Compare the live window with the reference; write the reports.

    Args:
        args: What to read and where to write.

    Returns:
        The exit status: 0 no drift, 1 drift (errors and too few predictions raise).

    Raises:
        TooFewError: Fewer predictions than ``monitor.min_samples``.
        PipelineError: A source or reference that cannot be read.
    """
    params = load_params(args.params).monitor
    reference, info = load_reference(args.reference)
    version = args.model_version or info.get("model_version")
    # One source for the whole run: the window is read from it and the report published to it.
    source = open_events(args.events, args.events_prefix)
    current = load_current(source, args.window or params.window, version)
    n = len(current.frame)
    if n < params.min_samples:
        raise TooFewError(
            f"only {n} predictions of model {current.model_version} in {args.events}; at least "
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
        # Which runtimes answered the window, beside the one the reference was computed with.
        "variants": {
            "window": dict(current.window.variants),
            "reference": str(info.get("variant", "savedmodel")),
        },
        "window": {
            "from": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(current.first_ts)),
            "to": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(current.last_ts)),
        },
        "sample_sizes": {"current": n, "reference": len(reference)},
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    live, classification = live_quality(current.window, params)
    result["live"] = live
    estimate = estimate_accuracy(current.window.confidence)  # every event, labelled or not
    expected = float(reference["confidence"].mean())  # the same estimate on validation images
    result["estimated"] = {**estimate.as_dict(), "reference_accuracy": round(expected, 6)}
    result["severity"] = grade(bool(summary["drift"]), live, estimate, expected, params)
    args.out.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.out / "drift.html") as tmp:
        snapshot.save_html(str(tmp))
    if classification is not None:
        with atomic_path(args.out / "classification.html") as tmp:
            classification.save_html(str(tmp))
    text = json.dumps(result, indent=2) + "\n"
    write_text(args.out / paths.DRIFT_REPORT.name, text)
    if isinstance(source, RedisEvents):  # many replicas: the gauges read it from the broker
        try:
            source.publish_report(text)
        except LogError as err:
            raise PipelineError(str(err)) from None
    named = f" ({', '.join(drifted)})" if drifted else ""
    if args.as_json:
        print(text, end="")
        return DRIFT if summary["drift"] else NO_DRIFT
    print(
        f"{result['verdict']}: {len(drifted)} of {len(summary['columns'])} columns drifted"
        f"{named}; {n} live vs {len(reference)} reference; report {args.out / 'drift.html'}"
    )
    print(
        f"estimated accuracy {estimate.accuracy:.4f} (95% interval {estimate.low:.4f}-"
        f"{estimate.high:.4f}) from the calibrated confidence of {estimate.count} predictions"
    )
    print(f"severity {result['severity']['level']}: {result['severity']['reason']}")
    if live["accuracy"] is not None:
        flag = " BELOW monitor.min_live_accuracy" if live["below_min"] else ""
        print(f"live accuracy {live['accuracy']:.4f} on {live['labelled']} labelled events{flag}")
    return DRIFT if summary["drift"] else NO_DRIFT


def run_once(args: CheckOptions) -> int:
    """One verdict as an exit status: 0/1/3, or 2 with a one-line error on stderr.

    Schedulers and alerts read the status: an internal failure is 2, like any error.

    Args:
        args: What to read and where to write.

    Returns:
        The exit status.
    """
    try:
        return check(args)
    except TooFewError as err:
        print(f"mnist monitor: {err}", file=sys.stderr)
        return TOO_FEW
    except PipelineError as err:
        print(f"mnist monitor: error: {err}", file=sys.stderr)
        return ERROR
    except Exception as err:
        log.debug("mnist monitor crashed", exc_info=True)
        print(f"mnist monitor: internal error: {type(err).__name__}: {err}".splitlines()[0],
              file=sys.stderr)  # fmt: skip
        return ERROR
