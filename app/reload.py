"""Model reload without downtime, in every worker.

``POST /admin/reload`` loads and warms the new model in the worker that got the call; only if it
passes does it swap it in and write ``STATE_DIR/reload.json`` (source + generation). Every worker
polls that file and loads the same source in the background, swapping when it is ready, so
requests keep being answered throughout. A model that fails is refused and the old one keeps
serving. Workers started later (a Gunicorn HUP, a crash restart) load the recorded source.

When the source is a registry alias (``models:/NAME@production``), every worker also asks the
registry every ``MODEL_FOLLOW_S`` seconds where the alias points and loads a moved target the
same way, so ``mnist registry promote`` and ``rollback`` are deployments. A target that fails to
load or warm up is refused (logged once, counted in ``mnist_model_refused_total``, shown by
``/health/ready``) and retried on the next poll; the old model keeps serving meanwhile.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

from app.serving_model import ModelHolder, ModelLoadError, ServingModel, is_alias

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
        *,
        follow_s: float = 30.0,
        alias_target: Callable[[str], str] | None = None,
        on_refused: Callable[[], None] | None = None,
    ) -> None:
        self.holder, self.loader, self.on_loaded = holder, loader, on_loaded
        self.state_dir, self.poll_s, self.follow_s = state_dir, poll_s, follow_s
        self.alias_target, self.on_refused = alias_target, on_refused
        self.generation = (read_control(state_dir) or (0, ""))[0]
        self.source = ""  # what this worker was asked to serve (an alias stays an alias)
        # The alias followed (None when the source is a directory or a pinned version), and the
        # registry version it points at that this worker refused (None when there is none).
        self.following: str | None = None
        self.refused: str | None = None
        # A first load that failed (registry unreachable, files not there yet): retried on
        # every poll until it serves, so a worker never stays unready for a transient cause.
        self.retry_source: str | None = None
        self._load_lock = threading.Lock()
        # Why this worker does not serve the latest accepted reload (None when it does):
        # /health/ready answers 503 meanwhile, so no traffic reaches a worker left behind.
        self.lagging: str | None = None
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()

    def start(self) -> None:
        """Start polling in daemon threads (in the worker, never in the Gunicorn master)."""
        self._stop.clear()
        self._threads = [threading.Thread(target=self._loop, name="model-reload", daemon=True)]
        if self.alias_target is not None:
            self._threads.append(
                threading.Thread(target=self._follow_loop, name="model-follow", daemon=True)
            )
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop polling; a load in progress finishes in its daemon thread unwaited-for."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads = []

    def apply(self, source: str) -> ServingModel:
        """Load, warm up and swap in ``source`` in this worker.

        Raises:
            ModelLoadError: The model was refused; the old one keeps serving.
        """
        with self._load_lock:
            model = self.loader(source)
            self.holder.swap(model)
            self.on_loaded(model)
            self.source, self.refused = source, None
            self.following = source if is_alias(source) else None
        return model

    def first_load(self, source: str) -> None:
        """Load the model a worker starts with; on failure, keep retrying in the background."""
        try:
            self.apply(source)
        except ModelLoadError as err:
            log.error(
                "model not loaded; not ready, retrying", extra={"fields": {"reason": str(err)}}
            )
            self.retry_source = source

    def _follow_loop(self) -> None:
        while not self._stop.wait(self.follow_s):
            self.follow_once()

    def follow_once(self) -> None:
        """Ask the registry where the followed alias points; load it if it moved.

        An unreachable registry changes nothing (the model keeps serving; logged as a warning).
        """
        source = self.following
        if source is None or self.alias_target is None:
            return
        from mlflow.exceptions import MlflowException

        try:
            target = self.alias_target(source)
        except (MlflowException, OSError) as err:
            log.warning(
                "cannot ask the registry where the alias points; serving on",
                extra={"fields": {"alias": source, "reason": str(err)}},
            )
            return
        current = self.holder.current
        if current is not None and current.info.registry_version == target:
            return
        try:
            with self._load_lock:
                if self.source != source:  # an admin reload replaced what we follow
                    return
                model = self.loader(source)
                if model.info.registry_version != target:  # moved again meanwhile: next poll
                    log.info("alias moved during the load", extra={"fields": {"alias": source}})
                self.holder.swap(model)
                self.on_loaded(model)
                self.refused = None
        except ModelLoadError as err:
            if self.refused != target:
                log.error(
                    "refused the alias's new target; the old model keeps serving",
                    extra={"fields": {"alias": source, "version": target, "reason": str(err)}},
                )
                if self.on_refused is not None:
                    self.on_refused()
            self.refused = target
            return
        log.info(
            "followed the alias",
            extra={"fields": {"alias": source, "registry_version": model.info.registry_version}},
        )

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_s):
            self.poll_once()

    def poll_once(self) -> None:
        """Follow the reload record once: load a newer generation, or retry a failed one.

        A worker that cannot load what another worker accepted (a file not there yet, memory)
        keeps the generation it serves, reports itself not ready and retries on every poll, so
        it ends up serving the target or out of the load balancer, never silently behind.
        """
        if self.retry_source is not None and self.holder.current is None:
            try:
                self.apply(self.retry_source)
            except ModelLoadError:
                return  # logged at the first failure; next poll tries again
            log.info("model loaded after a failed start", extra={"fields": {"source": self.source}})
            self.retry_source = None
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
