"""The latest drift verdict as Prometheus gauges, read from the monitor's ``drift.json``.

Every worker polls the file and sets its own gauges (multiprocess mode ``livemax``), so whichever
worker answers a scrape, ``/metrics`` shows the same, current verdict.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

from prometheus_client import Gauge

from mnist_contracts.drift import DriftReport

log = logging.getLogger(__name__)


class DriftStatus:
    """Polls ``path`` and mirrors its verdict into gauges."""

    def __init__(self, path: Path, detected: Gauge, share: Gauge, checked: Gauge) -> None:
        self.path = path
        self.detected, self.share, self.checked = detected, share, checked
        self._mtime = 0.0

    def refresh(self) -> None:
        """Re-read the file if it changed; a missing or broken file leaves the gauges alone."""
        try:
            mtime = self.path.stat().st_mtime
            if mtime == self._mtime:
                return
            report: DriftReport = json.loads(self.path.read_text())
            self.detected.set(1.0 if report["drift"] else 0.0)
            self.share.set(float(report["drifted_share"]))
            self.checked.set(mtime)
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
