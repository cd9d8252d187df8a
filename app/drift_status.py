"""The latest monitor verdict as Prometheus gauges, read from the monitor's ``drift.json``.

With ``EVENTS_URL`` the report is read from the broker instead (``{prefix}:report``, written by
``mnist monitor --events redis://...``), so every replica sees one report without a shared disk.
Every worker polls and sets its own gauges (multiprocess mode ``livemax``), so whichever
worker answers a scrape, ``/metrics`` shows the same, current verdict: drift, and live accuracy
on labelled events with its alert threshold.
"""

from __future__ import annotations

import calendar
import json
import logging
import math
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, cast

import redis

from mnist_contracts.drift import DriftReport
from mnist_contracts.event_store import DEFAULT_PREFIX
from mnist_contracts.event_store.redis_stream import Keys

if TYPE_CHECKING:
    from app.metrics import ServiceMetrics

log = logging.getLogger(__name__)


def _epoch(stamp: str) -> float:
    return calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ"))


class DriftStatus:
    """Polls the report (a file, or a Redis key) and mirrors it into the service's gauges."""

    def __init__(
        self, path: Path, metrics: ServiceMetrics, redis_url: str | None = None,
        prefix: str = DEFAULT_PREFIX,
    ) -> None:  # fmt: skip
        self.path, self.metrics = path, metrics
        self._mtime = 0.0
        self._last = ""
        self._redis = (
            None if redis_url is None else redis.Redis.from_url(redis_url, socket_timeout=2)
        )
        self._key = Keys(prefix).report
        self._failing = False  # warn once per failure, not on every poll
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _read(self) -> tuple[float, str] | None:
        """The report's time and text when it changed, else None."""
        if self._redis is None:
            mtime = self.path.stat().st_mtime
            return None if mtime == self._mtime else (mtime, self.path.read_text())
        raw = cast("bytes | None", self._redis.get(self._key))
        if raw is None or raw.decode() == self._last:
            return None
        text = raw.decode()
        return _epoch(json.loads(text)["generated_at"]), text

    def refresh(self) -> None:
        """Re-read the report if it changed; a missing or broken one leaves the gauges alone."""
        m = self.metrics
        try:
            found = self._read()
            if found is None:
                self._failing = False
                return
            mtime, text = found
            report: DriftReport = json.loads(text)
            m.drift_detected.set(1.0 if report["drift"] else 0.0)
            m.drift_share.set(float(report["drifted_share"]))
            live = report.get("live")
            if live is not None:
                accuracy = live["accuracy"]
                m.live_accuracy.set(math.nan if accuracy is None else float(accuracy))
                m.live_labelled.set(int(live["labelled"]))
                m.live_accuracy_min.set(float(live["min_accuracy"]))
            severity = report.get("severity")
            if severity is not None:
                m.monitor_severity.set(int(severity["code"]))
            estimated = report.get("estimated")
            if estimated is not None:
                for bound, key in (("expected", "accuracy"), ("low", "low"), ("high", "high")):
                    m.estimated_accuracy.labels(bound=bound).set(float(estimated[key]))
            m.drift_checked.set(mtime)
            self._mtime, self._last = mtime, text
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError, redis.RedisError) as err:
            if not self._failing:
                log.warning("unreadable drift report", extra={"fields": {"error": str(err)}})
            self._failing = True
            return
        self._failing = False

    def start(self, interval_s: float) -> None:
        """Read the report now, then poll it in a daemon thread until :meth:`stop`."""
        self._stop.clear()
        self.refresh()

        def loop() -> None:
            while not self._stop.wait(interval_s):
                self.refresh()

        self._thread = threading.Thread(target=loop, name="drift-status", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop polling."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
