"""The latest monitor verdict as Prometheus gauges, read from the monitor's ``drift.json``.

Every worker polls the file and sets its own gauges (multiprocess mode ``livemax``), so whichever
worker answers a scrape, ``/metrics`` shows the same, current verdict: drift, and live accuracy
on labelled events with its alert threshold.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from mnist_contracts.drift import DriftReport

if TYPE_CHECKING:
    from app.metrics import ServiceMetrics

log = logging.getLogger(__name__)


class DriftStatus:
    """Polls ``path`` and mirrors its verdict into the service's gauges."""

    def __init__(self, path: Path, metrics: ServiceMetrics) -> None:
        self.path, self.metrics = path, metrics
        self._mtime = 0.0

    def refresh(self) -> None:
        """Re-read the file if it changed; a missing or broken file leaves the gauges alone."""
        m = self.metrics
        try:
            mtime = self.path.stat().st_mtime
            if mtime == self._mtime:
                return
            report: DriftReport = json.loads(self.path.read_text())
            m.drift_detected.set(1.0 if report["drift"] else 0.0)
            m.drift_share.set(float(report["drifted_share"]))
            live = report.get("live")
            if live is not None:
                accuracy = live["accuracy"]
                m.live_accuracy.set(math.nan if accuracy is None else float(accuracy))
                m.live_labelled.set(int(live["labelled"]))
                m.live_accuracy_min.set(float(live["min_accuracy"]))
            m.drift_checked.set(mtime)
            self._mtime = mtime
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError) as err:
            log.warning("unreadable drift report", extra={"fields": {"error": str(err)}})

    def start(self, interval_s: float) -> None:
        """Poll in a daemon thread."""

        def loop() -> None:
            while True:
                self.refresh()
                time.sleep(interval_s)

        threading.Thread(target=loop, name="drift-status", daemon=True).start()
