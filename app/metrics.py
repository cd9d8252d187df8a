"""Prometheus metrics: HTTP (by endpoint and status), predictions, confidence, model facts.

Under Gunicorn with several workers, ``PROMETHEUS_MULTIPROC_DIR`` is set before Python starts
(``make serve`` and the container do it) and ``/metrics`` aggregates every worker's files, so
counters never go backwards between scrapes that hit different workers.
"""

from __future__ import annotations

import collections
import math
import os
from typing import Any

from flask import Flask
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_flask_exporter import PrometheusMetrics
from prometheus_flask_exporter.multiprocess import GunicornInternalPrometheusMetrics

from app import __version__

CONFIDENCE_BUCKETS = (0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.999, 1.0)


class ServiceMetrics:
    """The service's own metrics, plus the exporter's per-request ones."""

    def __init__(self, app: Flask) -> None:
        # A registry per app keeps test apps apart; in multiprocess mode values go to files and
        # /metrics reads them all, whatever registry a metric was declared in.
        self.registry = CollectorRegistry(auto_describe=True)
        self._serving: tuple[str, str, str, str] | None = None
        self._children: dict[tuple[int, str, str], Any] = {}
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            # /metrics reads every worker's files, these metrics' included; sharing our registry
            # with that collector would see the other workers' copies as duplicates.
            self.exporter: PrometheusMetrics = GunicornInternalPrometheusMetrics(
                app, group_by="url_rule"
            )
        else:
            self.exporter = PrometheusMetrics(app, group_by="url_rule", registry=self.registry)
        # The exporter's own info() gauge has no multiprocess mode, which multiprocess refuses.
        build = Gauge(
            "mnist_service_build_info",
            "Service build (value 1)",
            ["version"],
            registry=self.registry,
            multiprocess_mode="livemax",
        )
        build.labels(__version__).set(1)
        self.predictions = Counter(
            "mnist_predictions_total",
            "Images classified, by predicted class, model version and its variant (runtime)",
            ["predicted_class", "model_version", "variant"],
            registry=self.registry,
        )
        self.confidence = Histogram(
            "mnist_prediction_confidence",
            "Probability of the predicted class",
            buckets=CONFIDENCE_BUCKETS,
            registry=self.registry,
        )
        self.model_load_seconds = Gauge(
            "mnist_model_load_seconds",
            "Time to load and warm up the serving model",
            registry=self.registry,
            multiprocess_mode="livemax",
        )
        # liveall: one series per live worker (label pid), so a worker left behind shows.
        self.model_info = Gauge(
            "mnist_model_info",
            "The model each live worker serves (value 1): identity, variant and registry version",
            ["model_name", "model_version", "registry_version", "variant"],
            registry=self.registry,
            multiprocess_mode="liveall",
        )
        self.model_refused = Counter(
            "mnist_model_refused_total",
            "Models that failed to load or warm up and were refused (the old one kept serving)",
            registry=self.registry,
        )

        self.events_published = Counter(
            "mnist_events_published_total",
            "Prediction events published to the event stream (EVENTS_URL)",
            registry=self.registry,
        )
        self.events_dropped = Counter(
            "mnist_events_dropped_total",
            "Prediction events dropped: the store was down and the worker's buffer full, or it "
            "was still down when the worker stopped",
            registry=self.registry,
        )
        self.event_store_up = Gauge(
            "mnist_event_store_up",
            "1 while every worker can write its prediction events (SQLite log or Redis stream)",
            registry=self.registry,
            multiprocess_mode="livemin",
        )
        self.event_store_up.set(1)
        self.feedback = Counter(
            "mnist_feedback_total",
            "True labels received, by whether the model was right",
            ["correct"],
            registry=self.registry,
        )
        # From the monitor's report, like the drift gauges: accuracy on labelled live events.
        self.live_accuracy = Gauge(
            "mnist_live_accuracy",
            "Accuracy on the labelled events of the latest monitor window",
            registry=self.registry,
            multiprocess_mode="livemax",
        )
        self.live_labelled = Gauge(
            "mnist_live_labelled",
            "Labelled events behind mnist_live_accuracy",
            registry=self.registry,
            multiprocess_mode="livemax",
        )
        # Without labels: the mean calibrated confidence of the window, and its interval.
        self.estimated_accuracy = Gauge(
            "mnist_estimated_accuracy",
            "Accuracy of the latest monitor window estimated from calibrated confidence (bound: "
            "expected, low or high end of the 95% interval)",
            ["bound"],
            registry=self.registry,
            multiprocess_mode="livemax",
        )
        self.monitor_severity = Gauge(
            "mnist_monitor_severity",
            "The latest monitor window graded by harm: 0 none, 1 ticket (drift, no estimated "
            "harm), 2 page (accuracy, live or estimated, too low)",
            registry=self.registry,
            multiprocess_mode="livemax",
        )
        self.live_accuracy_min = Gauge(
            "mnist_live_accuracy_min",
            "The alert threshold of mnist_live_accuracy (params.yaml monitor.min_live_accuracy)",
            registry=self.registry,
            multiprocess_mode="livemax",
        )
        # Unknown until a report says (NaN compares false): at 0, a replica or worker that has
        # not read the report yet read as "accuracy 0", which beside another's threshold paged
        # MnistLiveAccuracyLow (seen in tests/integration/test_alert_routing.py).
        self.live_accuracy.set(math.nan)
        self.live_accuracy_min.set(math.nan)

        self.drift_detected = Gauge(
            "mnist_drift_detected",
            "1 when the latest drift report found drift (mnist monitor), else 0",
            registry=self.registry,
            multiprocess_mode="livemax",
        )
        self.drift_share = Gauge(
            "mnist_drift_share",
            "Share of monitored columns that drifted in the latest drift report",
            registry=self.registry,
            multiprocess_mode="livemax",
        )
        self.drift_checked = Gauge(
            "mnist_drift_report_timestamp_seconds",
            "When the latest drift report was written (unix time)",
            registry=self.registry,
            multiprocess_mode="livemax",
        )

    def model_loaded(
        self, name: str, version: str, seconds: float, registry_version: str | None = None,
        variant: str = "savedmodel",
    ) -> None:  # fmt: skip
        """Record a (re)load: the new model's info series is 1, the previous one's 0."""
        serving = (name, version, registry_version or "", variant)
        if self._serving is not None and self._serving != serving:
            self.model_info.labels(*self._serving).set(0)
        self._serving = serving
        self.model_info.labels(*serving).set(1)
        self.model_load_seconds.set(seconds)

    def observe(
        self, classes: list[int], confidences: list[float], version: str,
        variant: str = "savedmodel",
    ) -> None:  # fmt: skip
        """Record answered predictions: one counter increment per class present, not per image."""
        for cls, count in collections.Counter(classes).items():
            key = (cls, version, variant)
            child = self._children.get(key)
            if child is None:  # labels() takes a lock and checks its arguments: once per series
                child = self._children[key] = self.predictions.labels(str(cls), version, variant)
            child.inc(count)
        for conf in confidences:
            self.confidence.observe(conf)
