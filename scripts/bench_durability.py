"""Benchmark the prediction log's durability: workers killed with SIGKILL under load.

Gunicorn with 2 workers serves a small exported model on a loopback port; 8 client threads send
single-image predictions for ``SECONDS`` while one worker is killed with SIGKILL every 3 s (the
master starts a new one). After a clean stop of the master, every answered prediction (HTTP 200
received by a client) should be a row of the log; the report counts the ones that are not, for
the default asynchronous writer and for ``PREDICTION_LOG_SYNC=true``, with each mode's req/s.

Writes ``reports/bench_durability.json``. Usage: ``make bench-durability`` (about 1 minute).
"""

from __future__ import annotations

import json
import os
import platform
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.gunicorn_server import gunicorn_server  # noqa: E402
from tests.support.models import export_tiny_model  # noqa: E402 - the tests' tiny model

SECONDS = 15.0
KILL_EVERY_S = 3.0
CLIENTS = 8
ZEROS = [[0] * 28 for _ in range(28)]


def workers_of(master: int) -> list[int]:
    """The master's live worker pids."""
    out = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True).stdout
    return [int(pid) for pid in out.split()]


def one_mode(model: Path, workdir: Path, sync: bool) -> dict[str, Any]:
    """Load with kills in one log mode; answered vs logged."""
    env = {"MODEL_DIR": str(model), "PREDICTION_LOG_SYNC": str(sync).lower()}
    answered = refused = 0
    lock = threading.Lock()
    stop = threading.Event()
    kills = 0
    with gunicorn_server(workdir, env, workers=2) as server:

        def client() -> None:
            nonlocal answered, refused
            session = requests.Session()
            while not stop.is_set():
                try:
                    ok = session.post(f"{server.url}/predict", json={"image": ZEROS}, timeout=30).ok
                except requests.RequestException:
                    ok = False  # cut by a kill: never answered, so never owed a log row
                    session = requests.Session()
                with lock:
                    answered, refused = answered + ok, refused + (not ok)

        threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        while time.perf_counter() - started < SECONDS:
            time.sleep(KILL_EVERY_S)
            alive = workers_of(server.process.pid)
            if alive:
                os.kill(alive[0], signal.SIGKILL)
                kills += 1
        stop.set()
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - started
        server.process.send_signal(signal.SIGTERM)  # clean stop: the live workers drain
        server.process.wait(timeout=90)
        with sqlite3.connect(server.prediction_log) as db:
            logged = db.execute("SELECT count(*) FROM predictions").fetchone()[0]
    return {
        "prediction_log_sync": sync,
        "workers_killed": kills,
        "answered": answered,
        "failed_or_cut": refused,
        "logged": logged,
        "answered_not_logged": max(answered - logged, 0),
        "req_per_s": round(answered / seconds, 1),
    }


def main() -> None:
    """Both modes, one report."""
    with tempfile.TemporaryDirectory(prefix="bench-durability-") as tmp:
        model = export_tiny_model(Path(tmp) / "model", seed=1)
        modes = [one_mode(model, Path(tmp) / f"mode-{sync}", sync) for sync in (False, True)]
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    report = {
        "machine": {"cores": os.cpu_count(), "platform": platform.platform()},
        "commit": commit,
        "load": {"seconds": SECONDS, "clients": CLIENTS, "kill_every_s": KILL_EVERY_S},
        "modes": modes,
    }
    (ROOT / "reports" / "bench_durability.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(modes))


if __name__ == "__main__":
    main()
