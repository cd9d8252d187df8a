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
from pathlib import Path

import pytest
import requests

from tests.support import PROJECT_ROOT
from tests.support.dockerfile import context_copies, env, stages
from tests.support.servers import free_port, wait_http_ok
from tests.support.venvs import locked_venv

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


@pytest.fixture(scope="session")
def serve_venv() -> Path:
    """A venv with exactly requirements-serve.lock, as the image's build stage installs it."""
    return locked_venv(PROJECT_ROOT / "requirements-serve.lock")


def test_the_service_runs_from_the_image_files_alone(
    serve_venv: Path, tiny_model: Path, tmp_path: Path
) -> None:
    srv = tmp_path / "srv"
    image_env = lay_out_srv(srv)
    assert (srv / "app").is_dir()
    assert (srv / "mnist_contracts").is_dir()
    # Training code stays out of the image: of the pipeline's package only the `mnist` command
    # comes along (for `mnist shadow`), with the two modules it imports at its top.
    shipped = {
        str(p.relative_to(srv / "mnist_pipeline")) for p in srv.glob("mnist_pipeline/**/*.py")
    }
    assert {"cli.py", "errors.py", "__init__.py", "commands/__init__.py"} <= shipped
    assert all(p.startswith("commands/") or p in {"cli.py", "errors.py", "__init__.py"}
               for p in shipped), shipped  # fmt: skip
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
        wait_http_ok(f"{url}/health/ready", server, log_file, 120, "the service")
        zeros = [[0] * 28 for _ in range(28)]
        answer = requests.post(f"{url}/predict", json={"image": zeros}, timeout=10)
        assert answer.status_code == 200, answer.text
        assert len(answer.json()["predictions"][0]["probabilities"]) == 10
        assert "Traceback" not in log_file.read_text()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
