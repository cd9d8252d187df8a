"""The service image, built and run as production runs it.

Real ``dockerd``: ``make image`` builds the image (on a base made from Debian packages where no
registry is reachable, the official Python image where one is). The container runs read-only as
uid 1000 with only its state directory writable, and pulls ``models:/...@production`` from a
real ``mlflow server`` on the host. Marked ``docker``: without an engine it skips, and fails in CI.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests

from tests.support import PROJECT_ROOT
from tests.support.containers import gunicorn_rss_kb, wait_ready
from tests.support.servers import free_port, mlflow_server
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.docker, pytest.mark.xdist_group("images")]
IMAGE = "mnist-api:test"
MONITOR_IMAGE = "mnist-monitor:test"
SLIM_IMAGE = "mnist-api:slim-test"
NAME = "mnist-classifier"


def docker(*args: str, timeout: float = 120, check: bool = True) -> str:
    result = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        pytest.fail(f"docker {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result.stdout.strip()


@pytest.fixture(scope="module")
def image() -> str:
    built = subprocess.run(
        ["make", "image", f"IMAGE={IMAGE}", f"MONITOR_IMAGE={MONITOR_IMAGE}",
         f"SLIM_IMAGE={SLIM_IMAGE}"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=1800, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-3000:]
    return IMAGE


@pytest.fixture
def registry(tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh ``mlflow server`` whose ``@production`` is the tiny model (version 1), for the one
    container test that pulls it; no other test may move that alias under it."""
    import mlflow

    from mnist_pipeline.registry import Registry
    from mnist_pipeline.stages.register import log_model

    store = tmp_path / "store"
    with mlflow_server(store, f"sqlite:///{store}/mlflow.db", str(store / "artifacts")) as url:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        with mlflow.start_run():
            version = log_model(tiny_model, NAME, np.zeros((1, 28, 28), np.uint8))
        Registry(NAME).set_alias("production", version)
        yield url


def test_the_image_serves_the_registry_model_read_only_and_loses_no_prediction(
    image: str, registry: str, tmp_path: Path, tiny_model: Path
) -> None:
    from mnist_contracts.model import read_identity

    state = tmp_path / "state"  # the one writable path besides tmpfs: the prediction log
    state.mkdir()
    os.chown(state, 1000, 1000) if os.geteuid() == 0 else state.chmod(0o777)
    port = free_port()
    name = f"mnist-test-{port}"
    docker(
        "run", "-d", "--name", name, "--read-only", "--tmpfs", "/tmp",
        "--network", "host",  # reaches the host's loopback mlflow server; binds loopback only
        "-v", f"{state}:/var/lib/mnist",
        "-e", f"BIND=127.0.0.1:{port}", "-e", "WEB_CONCURRENCY=2",
        "-e", f"MODEL_URI=models:/{NAME}@production", "-e", f"MLFLOW_TRACKING_URI={registry}",
        "--health-interval", "2s", "--health-start-period", "120s",  # the image's own check
        image,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        started = time.monotonic()
        try:
            wait_until(
                lambda: docker("inspect", "-f", "{{.State.Health.Status}}", name) == "healthy",
                180, interval=1, what=f"container {name} to be healthy",
                alive=lambda: docker("inspect", "-f", "{{.State.Running}}", name) == "true",
            )  # fmt: skip
        except TimeoutError as err:
            pytest.fail(f"{err}:\n" + logs(name))
        ready_s = time.monotonic() - started
        assert docker("exec", name, "id", "-u") == "1000"
        assert docker("inspect", "-f", "{{.HostConfig.ReadonlyRootfs}}", name) == "true"
        metadata = requests.get(f"{url}/metadata", timeout=10).json()
        assert metadata["model_version"] == read_identity(tiny_model).digest
        assert metadata["alias"] == "production"
        answered = 0
        for _ in range(40):
            r = requests.post(f"{url}/predict", json={"image": [[0] * 28] * 28}, timeout=10)
            assert r.status_code == 200, r.text
            answered += 1
        # Docker's own grace (10 s, then SIGKILL and exit 137): idle keep-alive connections
        # (the health check's, a client's) used to hold the stop for graceful_timeout (30 s).
        stopping = time.monotonic()
        docker("stop", name, timeout=90)
        stop_s = time.monotonic() - stopping
        assert docker("inspect", "-f", "{{.State.ExitCode}}", name) == "0", logs(name)
        with sqlite3.connect(state / "predictions.db") as db:
            logged = db.execute("SELECT count(*), min(model_version) FROM predictions").fetchone()
        assert logged == (answered, read_identity(tiny_model).digest)
        verdict = monitor_verdict(tmp_path, state, tiny_model)
        assert verdict["model_version"] == read_identity(tiny_model).digest
        assert verdict["sample_sizes"]["current"] == answered
        print(f"container healthy {ready_s:.1f} s after docker run, stopped in {stop_s:.1f} s")
    finally:
        docker("rm", "-f", name, check=False)


def test_the_slim_image_serves_tflite_without_tensorflow(
    image: str, registry: str, tiny_model: Path
) -> None:
    """The LiteRT image pulls the same registered model and serves its int8 variant."""
    from mnist_contracts.model import read_identity

    port = free_port()
    name = f"mnist-slim-{port}"
    started = time.monotonic()
    docker(
        "run", "-d", "--name", name, "--read-only", "--tmpfs", "/tmp", "--network", "host",
        "--tmpfs", "/var/lib/mnist:uid=1000,gid=1000",
        "-e", f"BIND=127.0.0.1:{port}", "-e", "WEB_CONCURRENCY=2",
        "-e", f"MODEL_URI=models:/{NAME}@production", "-e", f"MLFLOW_TRACKING_URI={registry}",
        SLIM_IMAGE,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            ready_s = wait_ready(url, started, 120, lambda: running(name))
        except TimeoutError as err:
            pytest.fail(f"slim container: {err}\n" + logs(name))
        metadata = requests.get(f"{url}/metadata", timeout=10).json()
        assert metadata["variant"] == "tflite-int8"
        assert metadata["model_version"] == read_identity(tiny_model).digest
        r = requests.post(f"{url}/predict", json={"image": [[0] * 28] * 28}, timeout=10)
        assert r.status_code == 200, r.text
        probs = r.json()["predictions"][0]["probabilities"]
        assert abs(sum(probs) - 1) < 1e-3
        # Not installed at all: no code path can bring TensorFlow (or SciPy) in.
        result = subprocess.run(
            ["docker", "exec", name, "python", "-c", "import tensorflow"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert result.returncode != 0
        assert "No module named 'tensorflow'" in result.stderr
        rss = [kb // 1024 for _, kb in gunicorn_rss_kb(name)]
        size = int(docker("image", "inspect", "-f", "{{.Size}}", SLIM_IMAGE))
        full = int(docker("image", "inspect", "-f", "{{.Size}}", IMAGE))
        assert size < full / 3
        print(
            f"slim image {size / 1e6:.0f} MB (service image {full / 1e6:.0f} MB), ready in "
            f"{ready_s:.1f} s, gunicorn RSS (master first) {rss} MB"
        )
    finally:
        docker("rm", "-f", name, check=False)


def monitor_verdict(tmp_path: Path, state: Path, model: Path) -> dict[str, object]:
    """Run the monitor image once against the service's log volume; return drift.json."""
    from mnist_pipeline.dataset import save_split
    from mnist_pipeline.stages import reference
    from tests.support.data import make_digits

    root = tmp_path / "pipeline"  # the reference stage's output for the model being served
    shutil.copytree(model, root / "models/mnist")
    save_split(make_digits(300, seed=5), root / "data/prepared/val.npz")
    params = "monitor: {reference_size: 200, window: 40, min_samples: 30}\n"
    (root / "params.yaml").write_text(params)
    reference.main(root)
    out = tmp_path / "drift"
    out.mkdir()
    os.chown(out, 1000, 1000) if os.geteuid() == 0 else out.chmod(0o777)
    result = subprocess.run(
        [
            "docker", "run", "--rm", "--read-only", "--tmpfs", "/tmp",
            "-v", f"{state}:/var/lib/mnist",
            "-v", f"{root / 'data/reference'}:/srv/data/reference:ro",
            "-v", f"{root / 'params.yaml'}:/srv/params.yaml:ro",
            "-v", f"{out}:/srv/reports/drift", MONITOR_IMAGE,
        ],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    # 0 or 1 is a verdict (the tiny model's blank inputs may well drift); 2 or 3 is not.
    assert result.returncode in (0, 1), result.stdout + result.stderr
    verdict: dict[str, object] = json.loads((out / "drift.json").read_text())
    return verdict


def running(name: str) -> bool:
    """Whether the container is still running."""
    return docker("inspect", "-f", "{{.State.Running}}", name, check=False) == "true"


def logs(name: str) -> str:
    """The container's last log lines (docker writes them to both streams)."""
    result = subprocess.run(
        ["docker", "logs", "--tail", "60", name], capture_output=True, text=True, check=False
    )
    return result.stdout + result.stderr


def test_the_monitor_image_runs_the_alert_receiver(image: str) -> None:
    """alertmanager.yml's webhook receiver as compose and Kubernetes run it: from the monitor
    image, one JSON line per alert, and a stop that is prompt and clean (it is PID 1)."""
    port = free_port()
    name = f"mnist-alert-log-{port}"
    docker(
        "run", "-d", "--name", name, "--read-only", "--network", "host",
        "--entrypoint", "python", MONITOR_IMAGE, "/srv/alert_log.py", "--port", str(port),
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: requests.get(url, timeout=2).ok, 60, interval=0.5,
                   what="the alert receiver", alive=lambda: running(name))  # fmt: skip
        body = {"receiver": "page", "status": "firing", "alerts": [{
            "status": "firing", "labels": {"alertname": "MnistModelHarmful", "severity": "page"},
            "annotations": {"summary": "s", "runbook_url": "docs/runbooks/model-harmful.md"},
            "startsAt": "2026-12-04T00:00:00Z", "endsAt": "0001-01-01T00:00:00Z"}]}  # fmt: skip
        assert requests.post(f"{url}/page", json=body, timeout=10).status_code == 200
        refused = requests.post(f"{url}/page", data=b"not json", timeout=10)
        assert refused.status_code == 400
        stopping = time.monotonic()
        docker("stop", name, timeout=60)
        assert time.monotonic() - stopping < 5  # SIGTERM ends it; no 10 s wait for a kill
        assert docker("inspect", "-f", "{{.State.ExitCode}}", name) == "0"
        out = subprocess.run(["docker", "logs", name], capture_output=True, text=True, check=True)
        (line,) = out.stdout.splitlines()
        record = json.loads(line)
        assert (record["route"], record["alertname"], record["status"]) == (
            "page", "MnistModelHarmful", "firing")  # fmt: skip
        assert record["runbook_url"] == "docs/runbooks/model-harmful.md"
    finally:
        docker("rm", "-f", name, check=False)


def test_a_baked_image_names_its_commit_and_its_test_figures(image: str, tiny_model: Path,
                                                             tmp_path: Path) -> None:  # fmt: skip
    """The model baked in (as `make image` does after `make repro`): /metadata names the commit
    the image was built from and the evaluate stage's figures, with no registry to ask."""
    context = tmp_path / "context"  # the repository as a clone has it, the tiny model baked in
    wanted = ["docker", "app", "src", "*.lock", "*.conf.py", "Dockerfile", ".dockerignore",
              "monitoring", "params.yaml"]  # fmt: skip
    listed = subprocess.run(["git", "ls-files", *wanted], cwd=PROJECT_ROOT, capture_output=True,
                            text=True, check=True)  # fmt: skip
    for rel in [
        *listed.stdout.split(),
        *(str(p.relative_to(PROJECT_ROOT)) for p in (PROJECT_ROOT / "docker/wheels").glob("*.whl")),
    ]:  # hard links: the same bytes, so the venv layers come from the image fixture's cache
        (context / rel).parent.mkdir(parents=True, exist_ok=True)
        os.link(PROJECT_ROOT / rel, context / rel)
    shutil.copytree(tiny_model, context / "models/mnist")
    figures = {"test": {"accuracy": 0.5}, "tflite-int8": {"accuracy": 0.49, "agreement": 0.97}}
    (context / "reports").mkdir()
    (context / "reports/metrics.json").write_text(json.dumps(figures))
    commit = "0123456789abcdef0123456789abcdef01234567"  # pragma: allowlist secret
    baked = "mnist-api:baked-test"
    base = subprocess.run(["bash", "docker/base-image.sh"], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, check=True).stdout.strip()  # fmt: skip
    built = subprocess.run(
        ["docker", "build", "--quiet", "--target", "slim", "-t", baked,
         "--build-arg", f"PYTHON_IMAGE={base}", "--build-arg", "BAKE_MODEL=true",
         "--build-arg", f"GIT_COMMIT={commit}", str(context)],
        env={**os.environ, "DOCKER_BUILDKIT": "0"}, capture_output=True, text=True, timeout=900,
        check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    port = free_port()
    name = f"mnist-baked-{port}"
    started = time.monotonic()
    docker(
        "run", "-d", "--name", name, "--read-only", "--tmpfs", "/tmp", "--network", "host",
        "--tmpfs", "/var/lib/mnist:uid=1000,gid=1000", "-e", f"BIND=127.0.0.1:{port}", baked,
    )  # fmt: skip
    try:
        try:
            wait_ready(f"http://127.0.0.1:{port}", started, 120, lambda: running(name))
        except TimeoutError as err:
            pytest.fail(f"baked container: {err}\n" + logs(name))
        metadata = requests.get(f"http://127.0.0.1:{port}/metadata", timeout=10).json()
        assert metadata["git_commit"] == commit
        assert metadata["test_metrics"] == figures["tflite-int8"]
        assert metadata["registry_version"] is None  # nothing was asked of a registry
    finally:
        docker("rm", "-f", name, check=False)
        docker("rmi", "-f", baked, check=False)
