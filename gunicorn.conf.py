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

from mnist_contracts.env_file import load_env

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
# An idle keep-alive connection is closed after this long, also during a stop (see below).
keepalive = 2
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


def _expire_idle_connections_while_stopping(worker: Any) -> None:  # noqa: ANN401
    """Let a stopping worker close its idle keep-alive connections after ``keepalive`` seconds.

    Gunicorn 26's gthread worker waits for its open connections during a graceful stop with one
    ``select()`` as long as what is left of ``graceful_timeout``, and expires keep-alive
    connections only between two selects: one idle connection (a probe's, a balancer's) held
    every stop for the full 30 s, past Docker's 10 s (then SIGKILL, exit 137). Each wait is
    capped at a second, so idle connections expire on time and the worker exits.
    """
    wait = getattr(worker, "wait_for_and_dispatch_events", None)
    if wait is not None:
        worker.wait_for_and_dispatch_events = lambda timeout: wait(min(timeout, 1.0))


def post_worker_init(worker: Any) -> None:  # noqa: ANN401 - gunicorn's Worker
    """The worker has built the app (which only wires): load the model, start its threads."""
    from app import lifecycle

    _expire_idle_connections_while_stopping(worker)
    lifecycle.start(worker.wsgi)


def worker_exit(server: Any, worker: Any) -> None:  # noqa: ANN401
    """Stop the worker's threads and write what its event sink holds.

    In a few seconds even when the store is down: what could not be written is counted and said
    once.
    """
    app = getattr(worker, "wsgi", None)  # None when the worker failed before building it
    if app is not None:
        from app import lifecycle

        lifecycle.stop(app)
