"""Model reload without downtime, in every worker.

``POST /admin/reload`` loads and warms the new model in the worker that got the call; only if it
passes does it swap it in and write ``STATE_DIR/reload.json`` (source + generation). Every worker
polls that file and loads the same source in the background, swapping when it is ready, so
requests keep being answered throughout. A model that fails is refused and the old one keeps
serving. Workers started later (a Gunicorn HUP, a crash restart) load the recorded source.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from app.model import ModelHolder, ModelLoadError, ServingModel

log = logging.getLogger(__name__)

CONTROL_FILE = "reload.json"


def read_control(state_dir: Path) -> tuple[int, str] | None:
    """The last accepted reload: ``(generation, source)``, or None."""
    try:
        record = json.loads((state_dir / CONTROL_FILE).read_text())
        return int(record["generation"]), str(record["source"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_control(state_dir: Path, source: str) -> int:
    """Record an accepted reload atomically; return its generation.

    The read-increment-write holds an exclusive lock on a file beside the record, so two
    reloads accepted at once by two workers get two generations, never the same one.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    with (state_dir / f".{CONTROL_FILE}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        current = read_control(state_dir)
        generation = (current[0] if current else 0) + 1
        tmp = state_dir / f".{CONTROL_FILE}.{os.getpid()}.{threading.get_ident()}"
        tmp.write_text(json.dumps({"generation": generation, "source": source}))
        os.replace(tmp, state_dir / CONTROL_FILE)
    return generation


class ReloadWatcher:
    """Polls the control file and reloads this worker's model when it changes."""

    def __init__(
        self,
        holder: ModelHolder,
        loader: Callable[[str], ServingModel],
        on_loaded: Callable[[ServingModel], None],
        state_dir: Path,
        poll_s: float,
    ) -> None:
        self.holder, self.loader, self.on_loaded = holder, loader, on_loaded
        self.state_dir, self.poll_s = state_dir, poll_s
        self.generation = (read_control(state_dir) or (0, ""))[0]
        # Why this worker does not serve the latest accepted reload (None when it does):
        # /health/ready answers 503 meanwhile, so no traffic reaches a worker left behind.
        self.lagging: str | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start polling in a daemon thread (in the worker, never in the Gunicorn master)."""
        self._thread = threading.Thread(target=self._loop, name="model-reload", daemon=True)
        self._thread.start()

    def apply(self, source: str) -> ServingModel:
        """Load, warm up and swap in ``source`` in this worker.

        Raises:
            ModelLoadError: The model was refused; the old one keeps serving.
        """
        model = self.loader(source)
        self.holder.swap(model)
        self.on_loaded(model)
        return model

    def _loop(self) -> None:
        while True:
            time.sleep(self.poll_s)
            self.poll_once()

    def poll_once(self) -> None:
        """Follow the reload record once: load a newer generation, or retry a failed one.

        A worker that cannot load what another worker accepted (a file not there yet, memory)
        keeps the generation it serves, reports itself not ready and retries on every poll, so
        it ends up serving the target or out of the load balancer, never silently behind.
        """
        control = read_control(self.state_dir)
        if control is None or control[0] <= self.generation:
            return
        generation, source = control
        try:
            model = self.apply(source)
        except ModelLoadError as err:
            if self.lagging is None:
                log.error(
                    "reload failed in this worker; not ready, retrying",
                    extra={"fields": {"generation": generation, "reason": str(err)}},
                )
            self.lagging = f"reload generation {generation} failed to load in this worker"
            return
        self.generation, self.lagging = generation, None
        log.info("model reloaded", extra={"fields": {"version": model.info.version}})
