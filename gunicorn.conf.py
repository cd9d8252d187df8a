"""Gunicorn settings for the prediction service (``make serve``).

TensorFlow is not fork-safe: the master never imports it (``preload_app = False``); each worker
builds the app, loads and warms the model itself. ``PROMETHEUS_MULTIPROC_DIR`` must be in the
environment before Gunicorn starts, so that every worker writes its metrics where ``/metrics``
reads them all.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mnist_contracts.settings import load_env

# `.env` before any setting is read, as every entry point does; the environment wins over it.
load_env(Path.cwd())

wsgi_app = "app:create_app()"
bind = os.environ.get("BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Threads let a worker read the next request while TensorFlow (which releases the GIL) runs.
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
preload_app = False
timeout = 60
graceful_timeout = 30
keepalive = 5
accesslog = None  # the app writes JSON access lines with the request id
errorlog = "-"
# No runtime control socket (gunicornc): nothing to manage the service through but its signals,
# and nothing written under $HOME, which is read-only in the container.
control_socket_disable = True
loglevel = os.environ.get("LOG_LEVEL", "info").lower()


def on_starting(server: Any) -> None:  # noqa: ANN401 - gunicorn's Arbiter
    """Start with an empty metrics directory: stale files would resurrect old workers' counts."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
        for stale in Path(directory).glob("*.db"):
            stale.unlink()


def child_exit(server: Any, worker: Any) -> None:  # noqa: ANN401
    """Tell the Prometheus client a worker is gone, so its live gauges stop counting."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_flask_exporter.multiprocess import (
            GunicornInternalPrometheusMetrics,
        )

        GunicornInternalPrometheusMetrics.mark_process_dead_on_child_exit(worker.pid)


def worker_exit(server: Any, worker: Any) -> None:  # noqa: ANN401
    """Drain this worker's prediction log before it exits: nothing answered goes unlogged."""
    app = getattr(worker, "wsgi", None)
    state = getattr(app, "extensions", {}).get("mnist_service") if app is not None else None
    if state is not None:
        state.prediction_log.close()
