"""The service starts from exactly what the image gets: the serving lock and the copied paths.

Reads the Dockerfile's runtime stage (``COPY`` from the build context, ``ENV PYTHONPATH``), lays
those paths out in a directory standing for ``/srv``, installs ``requirements-serve.lock`` into a
fresh venv as the image's build stage does, and runs Gunicorn from there. A module the service
imports but the image does not get (the training package, a file not copied, a package missing
from the serving lock) fails this test before it fails a deployment.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import PROJECT_ROOT, free_port
from tests.dockerfile import context_copies, env, stages

pytestmark = pytest.mark.slow
SRV = "/srv"


def lay_out_srv(target: Path) -> dict[str, str]:
    """Copy what the runtime stage copies from the context; return its ENV, paths mapped."""
    runtime = stages(PROJECT_ROOT / "Dockerfile")["runtime"]
    for sources, destination in context_copies(runtime):
        assert destination.startswith(SRV), destination
        dest = target / destination.removeprefix(SRV).lstrip("/")
        for source in sources:
            src = PROJECT_ROOT / source
            if src.is_dir():
                shutil.copytree(src, dest, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                into = dest if destination.endswith("/") else dest.parent
                into.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, into / src.name if destination.endswith("/") else dest)
    return {k: v.replace(SRV, str(target)) for k, v in env(runtime).items()}


@pytest.fixture(scope="module")
def serve_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with exactly requirements-serve.lock, as the image's build stage installs it."""
    venv = tmp_path_factory.mktemp("serve-venv") / "venv"
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin/pip"), "install", "--quiet", "--no-deps",
         "-r", str(PROJECT_ROOT / "requirements-serve.lock")],
        check=True, capture_output=True,
    )  # fmt: skip
    return venv


def test_the_service_runs_from_the_image_files_alone(
    serve_venv: Path, tiny_model: Path, tmp_path: Path
) -> None:
    srv = tmp_path / "srv"
    image_env = lay_out_srv(srv)
    assert (srv / "app").is_dir()
    assert (srv / "mnist_contracts").is_dir()
    assert not (srv / "mnist_pipeline").exists()  # training code stays out of the image
    port = free_port()
    environment = {
        "PATH": f"{serve_venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "PYTHONPATH": image_env["PYTHONPATH"],
        "PYTHONUNBUFFERED": "1",
        "BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "1",
        "MODEL_DIR": str(tiny_model),
        "PREDICTION_LOG": str(tmp_path / "predictions.db"),
        "STATE_DIR": str(tmp_path / "state"),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus"),
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    log_file = tmp_path / "gunicorn.log"
    with log_file.open("wb") as log:
        server = subprocess.Popen(
            [str(srv / "entrypoint.sh")], cwd=srv, env=environment, stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail("the service did not start:\n" + log_file.read_text()[-3000:])
            try:
                if requests.get(f"{url}/health/ready", timeout=2).ok:
                    break
            except requests.RequestException:
                time.sleep(0.5)
        zeros = [[0] * 28 for _ in range(28)]
        answer = requests.post(f"{url}/predict", json={"image": zeros}, timeout=10)
        assert answer.status_code == 200, answer.text
        assert len(answer.json()["predictions"][0]["probabilities"]) == 10
        assert "Traceback" not in log_file.read_text()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
