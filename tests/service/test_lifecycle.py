"""The factory wires and starts nothing; the lifecycle starts and stops; a store outage is survived.

In-process for what the factory and the lifecycle start; real Gunicorn (as ``make serve`` and the
image run it) for stopping under a client loop with the prediction log down, up, and back.
"""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from app import create_app, lifecycle
from app.settings import Settings
from tests.support.gunicorn_server import Load, Server, gunicorn_server
from tests.support.waiting import wait_until

ZEROS = [[0] * 28 for _ in range(28)]


def test_the_factory_starts_nothing_and_stop_ends_what_start_started(
    make_settings: Callable[..., Settings],
) -> None:
    before = set(threading.enumerate())
    app = create_app(make_settings())
    assert set(threading.enumerate()) == before  # no thread, no model
    assert app.test_client().get("/health/ready").status_code == 503

    lifecycle.start(app)
    running = set(threading.enumerate()) - before
    assert {"model-reload", "drift-status", "prediction-log"} <= {t.name for t in running}
    client = app.test_client()
    assert client.post("/predict", json={"image": ZEROS}).status_code == 200
    ready = client.get("/health/ready").get_json()
    assert ready["event_store"] == "up"

    lifecycle.stop(app)
    assert not [t.name for t in running if t.is_alive()]
    with sqlite3.connect(make_settings().prediction_log) as db:
        assert db.execute("SELECT count(*) FROM predictions").fetchone()[0] == 1


def log_records(server: Server, message: str) -> list[dict[str, object]]:
    """The service's JSON log lines with this message."""
    found = []
    for line in server.log_file.read_text().splitlines():
        if f'"message": "{message}"' in line:
            found.append(json.loads(line[line.index("{") :]))
    return found


def stop(server: Server) -> tuple[int, float]:
    """SIGTERM the master, as `docker stop` does: its exit status and how long it took."""
    began = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    code = server.process.wait(timeout=60)
    return code, time.monotonic() - began


def metric(server: Server, name: str) -> float:
    text = requests.get(f"{server.url}/metrics", timeout=10).text
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert found, name
    return float(found.group(1))


def store_down(tmp_path: Path, tiny_model: Path) -> tuple[Path, Path, dict[str, str]]:
    """A log whose directory cannot be made (a file is in the way): the store is down.

    Returns:
        The file in the way (replace it by a directory and the store is back), the log's path,
        and the service's environment.
    """
    blocker = tmp_path / "var"
    blocker.write_text("in the way until the volume is there")
    log = blocker / "predictions.db"
    return blocker, log, {"MODEL_DIR": str(tiny_model), "PREDICTION_LOG": str(log)}


@pytest.mark.slow
def test_with_the_log_down_the_service_answers_says_it_once_and_stops_in_seconds(
    tmp_path: Path, tiny_model: Path
) -> None:
    *_, env = store_down(tmp_path, tiny_model)
    with gunicorn_server(tmp_path, env, workers=1) as server, Load(server.url, 2) as load:
        wait_until(lambda: load.total >= 30, 60, what="answers while the log is down")
        ready = requests.get(f"{server.url}/health/ready", timeout=10)
        assert ready.status_code == 200  # the worker serves on
        assert ready.json()["event_store"] == "down"
        assert metric(server, "mnist_event_store_up") == 0.0
        code, seconds = stop(server)  # under the client loop
    assert code == 0
    assert seconds < 10, f"stopped in {seconds:.1f} s: Docker kills after 10"
    assert len(log_records(server, "prediction log unavailable: buffering prediction events")) == 1
    [lost] = log_records(server, "prediction log: events not written at stop")
    assert lost["events"] == load.total  # every answer is counted, none silently lost
    assert not load.failures or all("Connection" in f for f in load.failures), load.failures[:3]
    print(f"store down: {load.total} answers, stopped in {seconds:.1f} s, exit {code}")


@pytest.mark.slow
def test_the_log_comes_back_and_the_buffered_events_are_written(
    tmp_path: Path, tiny_model: Path
) -> None:
    blocker, log, env = store_down(tmp_path, tiny_model)
    with gunicorn_server(tmp_path, env, workers=2) as server:
        with Load(server.url, 2) as load:
            wait_until(lambda: load.total >= 30, 60, what="answers while the log is down")
            blocker.unlink()
            blocker.mkdir()  # the store is back
            wait_until(lambda: len(log_records(server, "prediction log available again: "
                                               "writing the buffered events")) == 2,
                       30, what="both workers to reopen the log")  # fmt: skip
            wait_until(lambda: load.total >= 60, 60, what="answers with the log back")
        answered = load.total
        code, seconds = stop(server)
    assert code == 0
    assert not load.failures, load.failures[:3]
    with sqlite3.connect(log) as db:
        assert db.execute("SELECT count(*) FROM predictions").fetchone()[0] == answered
    assert len(log_records(server, "prediction log unavailable: buffering prediction events")) == 2
    print(f"store back: {answered} answers all logged, stopped in {seconds:.1f} s")


@pytest.mark.slow
def test_a_stop_under_load_with_the_log_up_loses_nothing(tmp_path: Path, tiny_model: Path) -> None:
    env = {"MODEL_DIR": str(tiny_model)}
    with gunicorn_server(tmp_path, env, workers=1) as server, Load(server.url, 2) as load:
        wait_until(lambda: load.total >= 30, 60, what="answers")
        code, seconds = stop(server)
    assert code == 0
    assert seconds < 10, f"stopped in {seconds:.1f} s: Docker kills after 10"
    with sqlite3.connect(server.prediction_log) as db:
        assert db.execute("SELECT count(*) FROM predictions").fetchone()[0] == load.total
    print(f"store up: {load.total} answers all logged, stopped in {seconds:.1f} s")
