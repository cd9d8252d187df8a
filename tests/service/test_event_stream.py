"""Many replicas, one stream: two Gunicorn services (two workers each) publish to one Redis.

Real Gunicorn, real Redis on loopback ports. Every answered prediction reaches the stream, the
monitor's window holds both services' events exactly once, feedback is accepted by the service
that did not answer, and a broker outage costs no request.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from mnist_contracts.event_store.redis_stream import RedisEvents
from mnist_pipeline.ops.monitor import live_quality
from mnist_pipeline.params import MonitorParams
from tests.service.test_gunicorn import metric_sum
from tests.support.gunicorn_server import gunicorn_server
from tests.support.redis_server import RedisServer
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.redis]


def digit(value: int) -> list[list[int]]:
    return [[value if (r + c) % (value % 7 + 2) == 0 else 0 for c in range(28)] for r in range(28)]


def load(url: str, count: int, answered: list[tuple[str, int]], failures: list[str]) -> None:
    """Send ``count`` single-image predictions; record (event id, class) or the failure."""
    with requests.Session() as session:
        for i in range(count):
            try:
                reply = session.post(f"{url}/predict", json={"image": digit(i % 256)}, timeout=30)
                if reply.status_code != 200:
                    failures.append(f"{reply.status_code} {reply.text[:200]}")
                    continue
                (p,) = reply.json()["predictions"]
                answered.append((p["event_id"], p["predicted_class"]))
            except requests.RequestException as err:
                failures.append(repr(err))


def run_load(urls: list[str], per_thread: int) -> tuple[list[tuple[str, int]], list[str]]:
    answered: dict[str, list[tuple[str, int]]] = {u: [] for u in urls}
    failures: list[str] = []
    threads = [threading.Thread(target=load, args=(u, per_thread, answered[u], failures))
               for u in urls for _ in range(3)]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [a for u in urls for a in answered[u]], failures


def worker_pids(log_file: Path) -> set[str]:
    return set(re.findall(r"Booting worker with pid: (\d+)", log_file.read_text()))


@pytest.fixture
def env(tiny_model: Path, redis_broker: RedisServer) -> dict[str, str]:
    return {"MODEL_DIR": str(tiny_model), "EVENTS_URL": redis_broker.url}


def test_two_services_one_stream_one_window_and_cross_replica_feedback(
    tmp_path: Path, env: dict[str, str], redis_broker: RedisServer
) -> None:
    with gunicorn_server(tmp_path / "a", env) as a, gunicorn_server(tmp_path / "b", env) as b:
        answered, failures = run_load([a.url, b.url], per_thread=40)
        assert failures == []
        by_a = answered[: len(answered) // 2]  # the first half came from service a
        # Feedback on a's events goes to b and the other way round: 3 of 4 labels agree.
        labels: dict[str, int] = {}
        for i, (event_id, cls) in enumerate(answered):
            label = cls if i % 4 else (cls + 1) % 10
            other = b.url if (event_id, cls) in by_a else a.url
            body = {"event_id": event_id, "label": label}
            reply = requests.post(f"{other}/feedback", json=body, timeout=10)
            assert reply.status_code == 200, reply.text
            labels[event_id] = label
        pids = {"a": worker_pids(a.log_file), "b": worker_pids(b.log_file)}
    # Both services drained their buffers when they stopped.
    client = redis_broker.client()
    # At-least-once: a redelivered batch repeats entries; the reader keeps each id once.
    _first_id, first = client.xrange("mnist:predictions", count=1)[0]
    client.xadd("mnist:predictions", first)
    window = RedisEvents(redis_broker.url).window(10_000)
    ids = [event_id for event_id, _ in answered]
    assert len(ids) == 240
    assert client.xlen("mnist:predictions") == 241
    assert sorted(window.event_ids) == sorted(ids)  # every prediction, each exactly once
    published_by = {m.decode() for _, f in client.xrange("mnist:predictions")
                    for m in [f[b"pid"]]}  # fmt: skip
    assert published_by & pids["a"]
    assert published_by & pids["b"]
    assert window.labels == labels
    quality, report = live_quality(window, MonitorParams(min_labels=50, min_live_accuracy=0.8))
    assert quality["labelled"] == 240
    assert quality["accuracy"] == pytest.approx(0.75)
    assert quality["below_min"] is True
    assert report is not None


def counters(url: str) -> tuple[float, float]:
    """(published, dropped) events over all workers, from /metrics."""
    text = requests.get(f"{url}/metrics", timeout=10).text
    return (metric_sum(text, "mnist_events_published_total"),
            metric_sum(text, "mnist_events_dropped_total"))  # fmt: skip


def wait_for(condition: Callable[[], bool], seconds: float = 30) -> bool:
    """True once ``condition`` holds (polled), False if it did not within ``seconds``."""
    try:
        return bool(wait_until(condition, seconds, interval=0.2, what="the condition"))
    except TimeoutError:
        return False


def test_a_broker_outage_fails_no_request_counts_drops_and_resumes(
    tmp_path: Path, env: dict[str, str], redis_broker: RedisServer
) -> None:
    with gunicorn_server(tmp_path, {**env, "EVENTS_BUFFER": "20"}) as server:
        before, failures = run_load([server.url], per_thread=5)
        assert wait_for(lambda: counters(server.url)[0] == len(before))
        redis_broker.stop()
        during, failures_down = run_load([server.url], per_thread=40)
        assert failures + failures_down == []  # every request answered while Redis was down
        _, dropped = counters(server.url)
        # Two workers hold at most 20 events each; the rest were dropped and counted.
        assert len(during) - 2 * 20 <= dropped < len(during)
        assert "event stream buffer full" in server.log_file.read_text()

        redis_broker.start()  # an empty Redis: the old stream went with the old process
        client = redis_broker.client()
        # What the workers held through the outage is published once the broker is back.
        assert wait_for(lambda: sum(counters(server.url)) == len(before) + len(during))
        held = counters(server.url)[0] - len(before)
        assert held > 0
        assert client.xlen("mnist:predictions") == held
        assert "event stream available again" in server.log_file.read_text()

        after, failures = run_load([server.url], per_thread=5)
        assert failures == []
        ids = {event_id for event_id, _ in after}

        def published() -> set[str]:
            return {f[b"id"].decode() for _, f in client.xrange("mnist:predictions")}

        assert wait_for(lambda: ids <= published())  # every new event reaches the stream
        assert len(published()) == held + len(after)
