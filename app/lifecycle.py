"""What a worker runs beside its requests, started and stopped in one place.

:func:`app.factory.create_app` only wires: it starts no thread and loads no model. Gunicorn calls
:func:`start` once a worker has built the app (``post_worker_init``) and :func:`stop` when the
worker exits (``worker_exit``); tests do the same through one fixture (``tests/support/serving``).

Started here, in this order: logging, TensorFlow's threads, the first model load (retried in the
background when it fails), the reload and alias followers, the drift gauges' poller, the event
sink's writer (which opens its store at once, so an outage shows before any request). Stopped
here: the pollers, then the event sink, which writes what it holds or, when its store is down,
counts what it could not write; a stop takes seconds, within Docker's and Kubernetes' grace.
"""

from __future__ import annotations

import logging
import time

from flask import Flask

from app import logs
from app.drift_status import DriftStatus
from app.reload import ReloadWatcher, read_control
from app.state import DRIFT, EXTENSION, RELOAD, ServiceState
from mnist_contracts.lite import SAVEDMODEL

log = logging.getLogger(__name__)
# How long a stopping worker waits for its event store: well within Docker's 10 s grace.
STOP_TIMEOUT_S = 5.0


def _configure_tensorflow(threads: int) -> None:
    # Per worker, before any op runs: 2 workers x 1 thread fill 2 cores without oversubscription.
    # Imported here: a worker serving a TFLite variant never imports TensorFlow.
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        pass  # already initialised in this process (tests start several apps)


def start(app: Flask) -> None:
    """Configure this process, load the model and start the worker's background threads.

    Args:
        app: An app from :func:`app.factory.create_app`.
    """
    state: ServiceState = app.extensions[EXTENSION]
    settings = state.settings
    logs.configure(settings.log_level)
    if settings.model_variant == SAVEDMODEL:
        _configure_tensorflow(settings.tf_threads)
    watcher: ReloadWatcher = app.extensions[RELOAD]
    control = read_control(settings.state_dir)
    watcher.first_load(control[1] if control else settings.model_source)
    watcher.start()
    drift: DriftStatus = app.extensions[DRIFT]
    drift.start(settings.drift_poll_s)
    state.prediction_log.start()


def stop(app: Flask, timeout: float = STOP_TIMEOUT_S) -> None:
    """Stop the background threads and close the event sink, within about ``timeout`` seconds.

    Args:
        app: An app :func:`start` started (or only built: then there is little to stop).
        timeout: How long the event sink may take to write what it holds.
    """
    began = time.monotonic()
    app.extensions[RELOAD].stop()
    app.extensions[DRIFT].stop()
    sink = app.extensions[EXTENSION].prediction_log
    sink.close(timeout)
    log.info(
        "worker stopped",
        extra={"fields": {"seconds": round(time.monotonic() - began, 2),
                          "event_store": "up" if sink.available else "down"}},
    )  # fmt: skip
