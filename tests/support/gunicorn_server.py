"""Real Gunicorn on a free loopback port, as ``make serve`` runs it, for the service tests."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.support import PROJECT_ROOT
from tests.support.servers import GUNICORN_LISTENING, bound_port
from tests.support.waiting import wait_until


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    prediction_log: Path
    log_file: Path
    model_dir: Path | None


@contextlib.contextmanager
def gunicorn_server(
    tmp_path: Path,
    env: dict[str, str],
    workers: int = 2,
    timeout: float = 90,
    config: Path = PROJECT_ROOT / "gunicorn.conf.py",
) -> Iterator[Server]:
    """Start Gunicorn with ``workers`` workers; yield once every worker answers ready."""
    prom = tmp_path / "prometheus"
    prom.mkdir(parents=True, exist_ok=True)
    full_env = {
        **os.environ,
        "BIND": "127.0.0.1:0",  # the kernel picks the port; the master's log names it
        "WEB_CONCURRENCY": str(workers),
        "METRICS_FILE": str(tmp_path / "none.json"),
        "PREDICTION_LOG": str(tmp_path / "predictions.db"),
        "STATE_DIR": str(tmp_path / "state"),
        "RELOAD_POLL_S": "0.2",
        "PROMETHEUS_MULTIPROC_DIR": str(prom),
        **env,
    }
    log_file = tmp_path / "gunicorn.log"
    with log_file.open("wb") as log:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "gunicorn"), "-c", str(config)],
            cwd=PROJECT_ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    port = bound_port(log_file, GUNICORN_LISTENING, process, timeout)
    url = f"http://127.0.0.1:{port}"
    in_a_row = 0

    def ready() -> bool:
        # Every worker has logged its model, and several answers in a row say ready.
        nonlocal in_a_row
        in_a_row = in_a_row + 1 if requests.get(f"{url}/health/ready", timeout=2).ok else 0
        loaded = log_file.read_text().count('"message": "model loaded"')
        return in_a_row >= 3 and loaded >= workers

    try:
        wait_until(ready, timeout, interval=0.1, what="every gunicorn worker to be ready",
                   alive=lambda: process.poll() is None)  # fmt: skip
    except TimeoutError as err:
        process.kill()
        # The access lines of the readiness probes would hide why: show everything else.
        lines = [x for x in log_file.read_text().splitlines() if '"app.access"' not in x]
        pytest.fail(f"gunicorn did not become ready ({err}):\n" + "\n".join(lines)[-4000:])
    model_dir = Path(env["MODEL_DIR"]) if "MODEL_DIR" in env else None
    try:
        yield Server(url, process, tmp_path / "predictions.db", log_file, model_dir)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)


class Load:
    """Clients posting a blank image to ``/predict`` until stopped, as a context manager.

    ``answered`` counts the answers by the model version that gave them; ``failures`` keeps
    every refused or failed request. Used by the tests that change the model under load.
    """

    def __init__(self, url: str, clients: int = 3) -> None:
        self.url = url
        self.blank = [[0] * 28 for _ in range(28)]
        self.answered: Counter[str] = Counter()
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run) for _ in range(clients)]

    @property
    def total(self) -> int:
        """Answers so far, all versions."""
        return sum(self.answered.values())

    def _run(self) -> None:
        session = requests.Session()
        while not self._stop.is_set():
            try:
                r = session.post(f"{self.url}/predict", json={"image": self.blank}, timeout=30)
            except requests.RequestException as err:
                self.failures.append(repr(err))
                continue
            if r.status_code != 200:
                self.failures.append(f"{r.status_code} {r.text[:200]}")
            else:
                self.answered[r.json()["model_version"]] += 1

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()
