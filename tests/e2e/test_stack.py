"""`make stack` from a fresh clone: the whole system up in Docker, used, switched and removed.

A clone of the project (its tracked files, tiny training params, committed) runs ``make stack``
as a new user would: it writes ``.env``, builds the images (stand-ins from Debian packages where
no registry answers, docker/stand-in-images.sh), starts PostgreSQL, S3 and MLflow, runs the
pipeline against that MLflow, and starts the rest. Then: predictions through the api reach the
Redis stream; the monitor container's verdict names the served model's digest; Prometheus sees
every target up; ``mnist registry promote`` and ``rollback`` switch the served version under a
client loop with no failed request; a plain ``docker compose up`` after ``make stack-down``
serves again; ``make stack-down V=1`` leaves nothing behind. Published ports are free ones and
the project name is the test's own, so a developer's stack is never touched.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests
import yaml

from tests.support import PROJECT_ROOT
from tests.support.gunicorn_server import Load
from tests.support.project_repo import copy_project, set_params, user_clone
from tests.support.servers import free_port
from tests.support.waiting import wait_until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.docker,
    pytest.mark.stack,
    pytest.mark.xdist_group("images"),
]

IMAGES = {
    "IMAGE": "mnist-api:test",
    "MONITOR_IMAGE": "mnist-monitor:test",
    "SLIM_IMAGE": "mnist-api:slim-test",
}


def compose_command() -> list[str]:
    """The compose ``make stack`` uses (``MNIST_COMPOSE``, else v2, else 1.29): one choice."""
    return subprocess.run(
        ["bash", "docker/stack.sh", "compose"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()


def tracked_files() -> list[str]:
    """The project's files as a clone has them (git's list), read from the working tree."""
    listed = subprocess.run(
        ["git", "ls-files"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    return [f for f in listed if (PROJECT_ROOT / f).is_file()]


def labelled(kind: str, project: str) -> list[str]:
    """Docker objects of ``kind`` (container, network, volume) that compose made for ``project``."""
    listing = ["docker", "ps", "-a"] if kind == "container" else ["docker", kind, "ls"]
    out = subprocess.run(
        [*listing, "-q", "--filter", f"label=com.docker.compose.project={project}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.split()


def requests_ok(url: str) -> bool:
    """Whether ``url`` answers 2xx (False when nothing listens)."""
    try:
        return requests.get(url, timeout=5).ok
    except requests.RequestException:
        return False


@pytest.mark.timeout(3600)  # images, a pipeline run and two model versions: minutes, not seconds
def test_make_stack_from_a_fresh_clone(tmp_path: Path) -> None:
    # The service's images as `make image` builds them: the stack's builds reuse those layers
    # (same Dockerfile, base and wheels), so the suite builds TensorFlow's venv once.
    subprocess.run(
        ["make", "image", *(f"{k}={v}" for k, v in IMAGES.items())],
        cwd=PROJECT_ROOT,
        check=True,
        capture_output=True,
        timeout=3600,
    )
    origin = copy_project(tmp_path / "origin", extra=tracked_files())
    # The tiny model is far below the real gate: let it be production, and any version its
    # successor; a monitor window the test fills in a few requests.
    set_params(
        origin,
        monitor={"window": 60, "min_samples": 30},
        register={"min_accuracy": 0.0, "tolerance": 1.0},
    )
    subprocess.run(
        [
            "git",
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.invalid",
            "commit",
            "-qam",
            "stack params",
        ],
        cwd=origin,
        check=True,
    )
    clone = user_clone(origin, tmp_path / "clone")
    shutil.copytree(PROJECT_ROOT / "docker/wheels", clone / "docker/wheels", dirs_exist_ok=True)
    project = f"mnist-e2e-{os.getpid()}"
    ports = {
        name: free_port()
        for name in (
            "API_PORT",
            "MLFLOW_PORT",
            "PROMETHEUS_PORT",
            "ALERTMANAGER_PORT",
            "GRAFANA_PORT",
            "MINIO_CONSOLE_PORT",
        )
    }
    # DVC sets DVC_ROOT for its stages; the suite's own value (tests/conftest.py) must not leak.
    env = {
        **{k: v for k, v in os.environ.items() if k != "DVC_ROOT"},
        **{k: str(v) for k, v in ports.items()},
        "COMPOSE_PROJECT_NAME": project,
        "MONITOR_EVERY_S": "5",
        "MODEL_FOLLOW_S": "2",
    }
    api, mlflow = (
        f"http://127.0.0.1:{ports['API_PORT']}",
        f"http://127.0.0.1:{ports['MLFLOW_PORT']}",
    )
    compose = compose_command()

    def make(*args: str) -> str:
        done = subprocess.run(
            ["make", *args],
            cwd=clone,
            env=env,
            capture_output=True,
            text=True,
            timeout=3600,
            check=False,
        )
        output = done.stdout + done.stderr
        (tmp_path / f"make-{args[0]}.log").write_text(output)
        assert done.returncode == 0, f"make {' '.join(args)}:\n{output[-6000:]}"
        return output

    def mnist(*args: str) -> str:
        done = subprocess.run(
            [str(PROJECT_ROOT / ".venv/bin/mnist"), *args],
            cwd=clone,
            env={**env, "MLFLOW_TRACKING_URI": mlflow},
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def in_redis(*args: str) -> str:
        return subprocess.run(
            [*compose, "exec", "-T", "redis", "redis-cli", *args],
            cwd=clone,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()

    def serving() -> str:
        return str(requests.get(f"{api}/metadata", timeout=5).json()["registry_version"])

    figures: dict[str, object] = {}
    started = time.monotonic()
    try:
        make("stack")
        ready_s = time.monotonic() - started
        # .env: from .env.example with generated passwords, readable by its owner only.
        written = (clone / ".env").read_text()
        secrets = {
            line.split("=", 1)[0]: line.split("=", 1)[1]
            for line in written.splitlines()
            if line.startswith(("POSTGRES_PASSWORD=", "MINIO_ROOT_PASSWORD="))
        }
        assert len(secrets) == 2, written
        assert all(len(v) >= 32 for v in secrets.values())
        assert (clone / ".env").stat().st_mode & 0o077 == 0

        served = requests.get(f"{api}/metadata", timeout=10).json()
        assert served["alias"] == "production"
        assert served["registry_version"] == "1"
        digest = served["model_version"]
        digits = [[[0] * 28 for _ in range(28)] for _ in range(16)]
        for row in digits:
            row[8][14] = row[9][14] = row[10][14] = 255
        first = requests.post(f"{api}/predict", json={"images": digits}, timeout=30)
        assert first.status_code == 200, first.text
        figures["first_prediction_s"] = round(time.monotonic() - started, 1)
        for _ in range(4):  # 80 predictions: above the monitor's window of 60
            assert requests.post(f"{api}/predict", json={"images": digits}, timeout=30).ok

        # The stream holds them, and the monitor container's verdict names the served model.
        assert int(in_redis("XLEN", "mnist:predictions")) >= 80

        def verdict() -> dict[str, object] | None:
            raw = in_redis("GET", "mnist:report")
            report = json.loads(raw) if raw else None
            return report if report and report["sample_sizes"]["current"] >= 60 else None

        report = wait_until(verdict, 120, interval=2, what="the monitor container's verdict")
        assert report["model_version"] == digest

        # Prometheus scrapes every target it has, and each answers.
        def targets() -> list[dict[str, object]] | None:
            found = requests.get(
                f"http://127.0.0.1:{ports['PROMETHEUS_PORT']}/api/v1/targets", timeout=5
            ).json()["data"]["activeTargets"]
            return found if found and all(t["health"] == "up" for t in found) else None

        up = wait_until(targets, 60, interval=1, what="every target up")
        assert {t["labels"]["job"] for t in up} == {"mnist-api"}

        # A second version, then promote and roll back under a client loop: no failed request.
        params = yaml.safe_load((clone / "params.yaml").read_text())
        params["seed"] = params["seed"] + 1
        (clone / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        # Registers v2 in the stack's MLflow; the uncommitted edit keeps it out of production.
        make("repro", f"MLFLOW_TRACKING_URI={mlflow}")
        with Load(api, clients=2) as load:
            mnist("registry", "promote", "2")
            wait_until(lambda: serving() == "2", 60, interval=0.5, what="the api to serve v2")
            mnist("registry", "rollback")
            wait_until(lambda: serving() == "1", 60, interval=0.5, what="the api to serve v1")
        assert load.failures == [], load.failures[:5]
        assert len(load.answered) == 2, load.answered  # both models answered during the switch

        # After make stack, a plain `docker compose up` is enough: the api, removed, comes back
        # serving the same model. (Not after stack-down: moto's S3 stand-in keeps the artifacts
        # in memory only, so a stopped stack here loses them; MinIO keeps them in its volume.)
        subprocess.run([*compose, "rm", "-sf", "api"], cwd=clone, env=env, check=True,
                       capture_output=True, timeout=300)  # fmt: skip
        assert not requests_ok(f"{api}/health/live")
        subprocess.run(
            [*compose, "up", "-d"], cwd=clone, env=env, check=True, capture_output=True, timeout=600
        )
        wait_until(
            lambda: requests.get(f"{api}/health/ready", timeout=5).ok,
            300,
            interval=1,
            what="the api after a plain compose up",
        )
        assert requests.get(f"{api}/metadata", timeout=5).json()["model_version"] == digest
    finally:
        make("stack-down", "V=1")
        # The images compose built under the test's project name (a user keeps theirs; the
        # layers stay shared with `make image`'s, so the next run is as warm).
        built = subprocess.run(
            ["docker", "images", "-q", "--filter", f"reference={project}-*"],
            capture_output=True, text=True, check=False,
        ).stdout.split()  # fmt: skip
        if built:
            subprocess.run(["docker", "rmi", "-f", *set(built)], capture_output=True, check=False)
    for kind in ("container", "network", "volume"):
        assert labelled(kind, project) == [], kind
    figures.update(
        {
            "make_stack_s": round(ready_s, 1),
            "test_s": round(time.monotonic() - started, 1),
            "compose": " ".join(compose),
            "machine": f"{os.cpu_count()} cores",
        }
    )
    print(f"stack: {figures}")
    if os.environ.get("STACK_FIGURES"):  # scripts/bench_stack.py reads them
        Path(os.environ["STACK_FIGURES"]).write_text(json.dumps(figures, indent=1) + "\n")
