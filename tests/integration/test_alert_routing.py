"""Alerts reach someone: digits -> service -> monitor -> Prometheus -> Alertmanager -> receiver.

Everything is real and runs with the repository's own configs: two Gunicorn replicas of the
service, ``mnist monitor`` on their prediction log, Debian's ``prometheus`` and
``prometheus-alertmanager`` with ``monitoring/prometheus.yml``, ``alerts.yml`` and
``alertmanager.yml``, and ``monitoring/alert_log.py`` as the webhook receiver. The test rewrites
only timing keys (intervals, ``for:``, group waits) and addresses (free loopback ports: the
scrape targets, Alertmanager's, the webhook's), and asserts that everything else is identical.

The model is the drift tests' small MLP (8,000 images, two epochs), not the production model:
its confidences are low everywhere (about 0.67 on clean test digits, where it is 92% right),
so it cannot tell harmful traffic from benign by itself at the production floor of 0.97. The
verdicts are driven with traffic whose effect on it is known and asserted from the service's own
answers: digits rotated 30-45 degrees (it reads about 40% of them right; estimated accuracy
about 0.46) are harmful against this test's floor of 0.6; a stream of only 1s and 7s is drift
it reads as well as ever (about 90% right, estimated 0.73), so benign.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
import yaml
from scipy import ndimage

from mnist_pipeline.dataset import Split
from mnist_pipeline.ops import monitor
from tests.support import PROJECT_ROOT
from tests.support.drift_world import build_drift_world
from tests.support.gunicorn_server import Server, gunicorn_server
from tests.support.servers import bound_port, free_port, stop, wait_http_ok
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.alerting]

MONITORING = PROJECT_ROOT / "monitoring"
FLOOR = 0.6  # monitor.min_live_accuracy for this model (see the module's docstring)
MONITOR = {"reference_size": 1000, "window": 300, "min_samples": 200, "min_labels": 50,
           "min_live_accuracy": FLOOR}  # fmt: skip
WINDOW = 300
# The only keys the test changes, besides addresses: minutes become a second or two.
TIMING = {
    "scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s", "for": "0s",
    "group_wait": "1s", "group_interval": "2s", "repeat_interval": "1h", "resolve_timeout": "1m",
}  # fmt: skip


def retime(config: Any) -> Any:
    """``config`` with every timing key present set to the test's value."""
    if isinstance(config, dict):
        return {k: TIMING[k] if k in TIMING else retime(v) for k, v in config.items()}
    if isinstance(config, list):
        return [retime(v) for v in config]
    return config


def comparable(config: Any) -> Any:
    """``config`` without its timing keys and with every address masked."""
    if isinstance(config, dict):
        return {
            k: "<address>" if k in {"targets", "url"} else comparable(v)
            for k, v in config.items()
            if k not in TIMING
        }
    if isinstance(config, list):
        return [comparable(v) for v in config]
    return config


def load(name: str) -> Any:
    return yaml.safe_load((MONITORING / name).read_text())


def write_configs(directory: Path, replicas: list[str], alertmanager: str, receiver: str) -> None:
    """The repository's three configs, retimed and readdressed, into ``directory``."""
    prometheus = retime(load("prometheus.yml"))
    prometheus["global"]["scrape_timeout"] = TIMING["scrape_timeout"]  # 10 s by default
    (job,) = prometheus["scrape_configs"]
    job["static_configs"] = [{"targets": replicas}]
    prometheus["alerting"]["alertmanagers"][0]["static_configs"] = [{"targets": [alertmanager]}]
    rules = retime(load("alerts.yml"))
    routing = retime(load("alertmanager.yml"))
    for receiver_config in routing["receivers"]:
        for hook in receiver_config["webhook_configs"]:
            hook["url"] = re.sub(r"//[^/]+/", f"//{receiver}/", hook["url"])
    written = {"prometheus.yml": prometheus, "alerts.yml": rules, "alertmanager.yml": routing}
    for name, config in written.items():
        (directory / name).write_text(yaml.safe_dump(config, sort_keys=False))
        original = load(name)
        if name == "prometheus.yml":
            original["global"]["scrape_timeout"] = "(added)"
        assert comparable(config) == comparable(original), name  # only timing and addresses


@dataclass
class Stack:
    """The running parts and the files they write."""

    root: Path
    test: Split
    api: Server
    standby: Server
    prometheus: str
    alertmanager: str
    received: Path
    report_dir: Path
    sent: int = 0

    def notifications(self) -> list[dict[str, Any]]:
        """What the receiver got so far: one record per alert per notification."""
        text = self.received.read_text() if self.received.exists() else ""
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def got(self, alertname: str, status: str, route: str | None = None) -> list[dict[str, Any]]:
        return [
            n for n in self.notifications()
            if n["alertname"] == alertname and n["status"] == status
            and (route is None or n["route"] == route)
        ]  # fmt: skip

    def wait_notified(
        self, alertname: str, status: str, route: str | None = None
    ) -> dict[str, Any]:
        """The first notification of ``alertname`` in ``status``, waited for."""

        def found() -> dict[str, Any] | None:
            hits = self.got(alertname, status, route)
            return hits[0] if hits else None

        try:
            return wait_until(found, 90, interval=0.5, what=f"{alertname} {status} notified")
        except TimeoutError as err:
            pytest.fail(f"{err}; received: {self.notifications()}; {self.diagnose()}")

    def diagnose(self) -> str:
        firing = requests.get(f"{self.prometheus}/api/v1/alerts", timeout=5).json()["data"]
        managed = requests.get(f"{self.alertmanager}/api/v2/alerts", timeout=5).json()
        return f"prometheus alerts: {firing}; alertmanager: {managed}"

    def predict(self, images: np.ndarray) -> list[dict[str, Any]]:
        """Send ``images`` to the first replica; wait until its log holds every answer."""
        answers = []
        for start in range(0, len(images), 100):
            reply = requests.post(
                f"{self.api.url}/predict",
                json={"images": images[start : start + 100].tolist()}, timeout=60,
            )  # fmt: skip
            assert reply.status_code == 200, reply.text
            answers += reply.json()["predictions"]
        self.sent += len(images)

        def logged() -> bool:
            with contextlib.closing(sqlite3.connect(self.api.prediction_log)) as db:
                rows: int = db.execute("SELECT COUNT(*) FROM predictions").fetchone()[0]
            return rows >= self.sent

        wait_until(logged, 30, interval=0.2, what="every answer in the prediction log")
        return answers

    def verdict(self) -> dict[str, Any]:
        """``mnist monitor`` on the replica's log; its drift.json is what both replicas read."""
        monitor.check(
            monitor.CheckOptions(
                events=str(self.api.prediction_log), reference=self.root / "data/reference",
                out=self.report_dir, params=self.root / "params.yaml",
            )
        )  # fmt: skip
        report: dict[str, Any] = json.loads((self.report_dir / "drift.json").read_text())
        return report

    def wait_severity(self, code: int) -> None:
        """Until Prometheus has scraped ``code`` from both live replicas' gauges."""

        def seen() -> bool:
            result = requests.get(
                f"{self.prometheus}/api/v1/query",
                params={"query": "mnist_monitor_severity"}, timeout=5,
            ).json()["data"]["result"]  # fmt: skip
            return bool(result) and all(float(r["value"][1]) == code for r in result)

        wait_until(seen, 60, interval=0.5, what=f"Prometheus to scrape severity {code}")


def process_tree(pid: int) -> list[int]:
    """``pid`` and its children (Gunicorn's master and workers)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                children.append(int(stat.parent.name))
    return [pid, *children]


def accuracy(answers: list[dict[str, Any]], labels: np.ndarray) -> float:
    return float(np.mean([a["predicted_class"] == y for a, y in zip(answers, labels, strict=True)]))


@contextlib.contextmanager
def server(cmd: list[str], log: Path, ready: str, what: str) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_http_ok(ready, process, log, 60, what)
        yield process
    finally:
        stop(process)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("alerting")
    world = build_drift_world(root, MONITOR)
    test = world["test"]
    assert isinstance(test, Split)
    report_dir = root / "reports/drift"
    env = {"MODEL_DIR": str(root / "models/mnist"), "DRIFT_REPORT": str(report_dir / "drift.json"),
           "DRIFT_POLL_S": "0.5"}  # fmt: skip
    received, receiver_log = root / "received.jsonl", root / "alert-log.log"
    with contextlib.ExitStack() as on_exit:
        with received.open("wb") as out, receiver_log.open("wb") as err:
            receiver = subprocess.Popen(
                [sys.executable, str(MONITORING / "alert_log.py"), "--port", "0"],
                stdout=out, stderr=err,
            )  # fmt: skip
        on_exit.callback(stop, receiver)
        port = bound_port(receiver_log, r"listening on http://127\.0\.0\.1:(\d+)", receiver, 30)
        api = on_exit.enter_context(gunicorn_server(root / "api", env, workers=1))
        standby = on_exit.enter_context(gunicorn_server(root / "standby", env, workers=1))
        configs = root / "configs"
        configs.mkdir()
        am_address, prom_address = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
        replicas = [api.url.removeprefix("http://"), standby.url.removeprefix("http://")]
        write_configs(configs, replicas, am_address, f"127.0.0.1:{port}")
        on_exit.enter_context(server(
            ["prometheus-alertmanager", f"--config.file={configs / 'alertmanager.yml'}",
             f"--storage.path={root / 'am-data'}", f"--web.listen-address={am_address}",
             "--cluster.listen-address="],
            root / "alertmanager.log", f"http://{am_address}/-/ready", "alertmanager",
        ))  # fmt: skip
        on_exit.enter_context(server(
            ["prometheus", f"--config.file={configs / 'prometheus.yml'}",
             f"--storage.tsdb.path={root / 'prom-data'}", f"--web.listen-address={prom_address}"],
            root / "prometheus.log", f"http://{prom_address}/-/ready", "prometheus",
        ))  # fmt: skip
        yield Stack(root, test, api, standby, f"http://{prom_address}", f"http://{am_address}",
                    received, report_dir)  # fmt: skip


def test_pages_and_tickets_reach_the_receiver_by_harm(stack: Stack) -> None:
    test = stack.test
    rng = np.random.default_rng(11)

    def clean() -> tuple[np.ndarray, np.ndarray]:
        pick = rng.choice(len(test), WINDOW, replace=False)
        return test.x[pick], test.y[pick]

    # In distribution: no verdict to act on.
    stack.predict(clean()[0])
    assert stack.verdict()["severity"]["level"] == "none"
    stack.wait_severity(0)

    # (b) Benign drift: only 1s and 7s, which this model reads as well as any digits. A ticket.
    ones_sevens = np.flatnonzero(np.isin(test.y, [1, 7]))[:WINDOW]
    answers = stack.predict(test.x[ones_sevens])
    assert accuracy(answers, test.y[ones_sevens]) >= FLOOR  # benign: the true accuracy says so
    report = stack.verdict()
    assert report["drift"]
    assert report["severity"]["level"] == "ticket", report["severity"]
    drift = stack.wait_notified("MnistInputDrift", "firing", route="ticket")
    assert drift["severity"] == "ticket"
    pages = [n for n in stack.notifications() if n["severity"] == "page"]
    assert pages == [], pages  # benign drift pages nobody

    # (d) A replica stops answering: the service-down page; the drift alerts wait behind it.
    standby = process_tree(stack.standby.process.pid)
    for pid in standby:
        os.kill(pid, signal.SIGSTOP)
    try:
        down = stack.wait_notified("MnistServiceDown", "firing", route="page")
        assert down["labels"]["instance"] == stack.standby.url.removeprefix("http://")
        # (a) Harmful traffic meanwhile: rotated digits, most of which this model gets wrong.
        rotated = rng.choice(len(test), WINDOW, replace=False)
        images = np.stack([
            ndimage.rotate(test.x[i], angle, reshape=False, order=1)
            for i, angle in zip(rotated, rng.uniform(30, 45, WINDOW) * rng.choice([-1, 1], WINDOW),
                                strict=True)
        ])  # fmt: skip
        answers = stack.predict(images)
        assert accuracy(answers, test.y[rotated]) < FLOOR  # harmful: the true accuracy says so
        report = stack.verdict()
        assert report["severity"]["level"] == "page", report["severity"]

        def harmful_suppressed() -> bool:
            alerts = requests.get(f"{stack.alertmanager}/api/v2/alerts", timeout=5).json()
            return any(
                a["labels"]["alertname"] == "MnistModelHarmful"
                and a["status"]["state"] == "suppressed" and a["status"]["inhibitedBy"]
                for a in alerts
            )  # fmt: skip

        wait_until(harmful_suppressed, 60, interval=0.5, what="MnistModelHarmful inhibited")
        # Three group intervals (2 s each) later, still no page about it reached the receiver:
        # waiting for one must time out.
        with contextlib.suppress(TimeoutError):
            wait_until(lambda: stack.got("MnistModelHarmful", "firing"), 7, interval=0.5,
                       what="a page for MnistModelHarmful")  # fmt: skip
        assert stack.got("MnistModelHarmful", "firing") == []  # inhibited: nobody paged for it
    finally:
        for pid in standby:
            os.kill(pid, signal.SIGCONT)

    # Back up: the outage resolves, and the page that waited behind it goes out, naming the model.
    stack.wait_notified("MnistServiceDown", "resolved", route="page")
    harmful = stack.wait_notified("MnistModelHarmful", "firing", route="page")
    served = requests.get(f"{stack.api.url}/metadata", timeout=10).json()
    assert harmful["labels"]["model_version"] == served["model_version"]
    assert harmful["severity"] == "page"

    # (c) Labels that come back say the model is wrong: a page of its own.
    images, _ = clean()
    answers = stack.predict(images)
    for answer in answers[:100]:
        wrong = (answer["predicted_class"] + 1) % 10
        sent = requests.post(
            f"{stack.api.url}/feedback",
            json={"event_id": answer["event_id"], "label": wrong},
            timeout=10,
        )
        assert sent.status_code == 200, sent.text
    report = stack.verdict()
    assert report["live"]["accuracy"] == 0.0
    assert report["severity"]["level"] == "page"
    live = stack.wait_notified("MnistLiveAccuracyLow", "firing", route="page")
    assert live["severity"] == "page"

    # (e) Traffic back to normal: everything that fired is resolved, and said so.
    stack.predict(clean()[0])
    assert stack.verdict()["severity"]["level"] == "none"
    routes = {
        "MnistInputDrift": "ticket",
        "MnistModelHarmful": "page",
        "MnistLiveAccuracyLow": "page",
    }
    for alertname, route in routes.items():
        resolved = stack.wait_notified(alertname, "resolved", route=route)
        assert resolved["severity"] == route
        assert resolved["endsAt"] > resolved["startsAt"]
