"""The service follows a registry alias live: promote and rollback are deployments.

Real ``mlflow server`` and Gunicorn with two workers on loopback ports; the versions are tiny
exported models logged the way the ``register`` stage logs them.
"""

from __future__ import annotations

import re
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import requests

from mnist_contracts.model import read_identity
from mnist_pipeline.registry import Registry
from tests.support.gunicorn_server import Load, gunicorn_server
from tests.support.servers import mlflow_server
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow
NAME = "mnist-classifier"
ZEROS = [[0] * 28 for _ in range(28)]


def register(directory: Path) -> str:
    """Log ``directory`` as a new version of NAME, as the register stage does."""
    import mlflow

    from mnist_pipeline.stages.register import log_model

    with mlflow.start_run():
        return log_model(directory, NAME, np.zeros((1, 28, 28), np.uint8))


def served_versions(url: str) -> Counter[str]:
    """``registry_version`` label of each live worker's ``mnist_model_info`` series at 1."""
    text = requests.get(f"{url}/metrics", timeout=10).text
    found = re.findall(r"^mnist_model_info\{([^}]*)\} 1\.0$", text, re.MULTILINE)
    return Counter(re.search(r'registry_version="([^"]*)"', f).group(1) for f in found)  # type: ignore[union-attr]


def answers(url: str) -> list[list[float]]:
    """The served model's probabilities for eight fixed images (seeded noise)."""
    images = np.random.default_rng(7).integers(0, 256, (8, 28, 28)).tolist()
    response = requests.post(f"{url}/predict", json={"images": images}, timeout=30)
    assert response.status_code == 200, response.text
    return [p["probabilities"] for p in response.json()["predictions"]]


def timed_wait(check: Callable[[], bool], seconds: float) -> float:
    """Seconds until ``check`` held (polled every 0.25 s; fails after ``seconds``)."""
    started = time.monotonic()
    wait_until(check, seconds, interval=0.25, what="the workers to follow the registry")
    return time.monotonic() - started


@pytest.fixture
def registry_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh ``mlflow server`` per test: each asserts version numbers and where the aliases
    point from version 1 on, which a registry shared with another test would not give."""
    store = tmp_path / "store"
    with mlflow_server(store, f"sqlite:///{store}/mlflow.db", str(store / "artifacts")) as url:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        yield url


def test_promote_and_rollback_reach_every_worker_with_no_failed_request(
    registry_url: str, tmp_path: Path, tiny_model: Path, other_model: Path
) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model, broken)
    for file in (broken / "variables").glob("variables.data-*"):
        file.write_bytes(file.read_bytes()[:100])  # truncated weights: refused at load
    v1, v2, v3 = register(tiny_model), register(other_model), register(broken)
    registry = Registry(NAME)
    registry.set_alias("production", v1)
    env = {
        "MODEL_URI": f"models:/{NAME}@production",
        "MLFLOW_TRACKING_URI": registry_url,
        "MODEL_FOLLOW_S": "1",
    }
    with (
        gunicorn_server(tmp_path / "serve", env, workers=2, timeout=180) as server,
        Load(server.url) as load,
    ):
        assert served_versions(server.url) == {v1: 2}
        metadata = requests.get(f"{server.url}/metadata", timeout=10).json()
        # One identity whatever the source: the digest inside the export, the registry
        # version and alias beside it as labels.
        assert metadata["model_version"] == read_identity(tiny_model).digest
        assert (metadata["registry_version"], metadata["alias"]) == (v1, "production")

        before = answers(server.url)
        registry.promote(v2)  # what `mnist registry promote` does
        took = timed_wait(lambda: served_versions(server.url) == {v2: 2}, 60)
        assert answers(server.url) != before  # another model, other answers
        registry.rollback()  # production back to the version it replaced
        took_back = timed_wait(lambda: served_versions(server.url) == {v1: 2}, 60)
        # The rollback is the old deployment again: the same answers, to the last digit, on
        # every worker (each call may reach either).
        assert [answers(server.url) for _ in range(4)] == [before] * 4

        registry.set_alias("production", v3)  # a version that cannot load
        timed_wait(
            lambda: (
                requests.get(f"{server.url}/health/ready", timeout=5).json().get("refused") == v3
            ),
            60,
        )
        time.sleep(2)  # not a wait for another process: the refused model must stay refused
        ready = requests.get(f"{server.url}/health/ready", timeout=5)
        assert ready.status_code == 200  # the old model keeps serving
        assert served_versions(server.url) == {v1: 2}
        text = requests.get(f"{server.url}/metrics", timeout=10).text
        assert re.search(r"^mnist_model_refused_total (\d+)", text, re.MULTILINE)
    assert not load.failures, load.failures[:5]
    assert set(load.answered) == {
        read_identity(tiny_model).digest,
        read_identity(other_model).digest,
    }
    # Figures for the note: how long a promotion and a rollback took to reach both workers.
    print(f"promote reached both workers in {took:.1f} s, rollback in {took_back:.1f} s")
