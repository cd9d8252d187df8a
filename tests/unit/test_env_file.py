"""`.env` reaches every setting (Gunicorn's before the app exists, the service's, the rest);
the environment wins."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from tests.support import PROJECT_ROOT

READ = ("BIND", "WEB_CONCURRENCY", "GUNICORN_THREADS", "LOG_LEVEL")


def gunicorn_settings(cwd: Path, **env: str) -> list[object]:
    """``bind``, ``workers``, ``threads`` and ``loglevel`` as gunicorn.conf.py computes them."""
    program = (
        "import json, runpy, sys; c = runpy.run_path(sys.argv[1]);"
        "print(json.dumps([c['bind'], c['workers'], c['threads'], c['loglevel']]))"
    )
    clean = {k: v for k, v in os.environ.items() if k not in READ}
    result = subprocess.run(
        [sys.executable, "-c", program, str(PROJECT_ROOT / "gunicorn.conf.py")],
        cwd=cwd, env={**clean, **env}, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return list(json.loads(result.stdout))


def test_gunicorn_reads_the_env_file_and_the_environment_wins(tmp_path: Path) -> None:
    assert gunicorn_settings(tmp_path) == ["127.0.0.1:8000", 2, 4, "info"]  # no .env: defaults
    (tmp_path / ".env").write_text(
        "BIND=127.0.0.1:8123\nWEB_CONCURRENCY=3\nGUNICORN_THREADS=5\nLOG_LEVEL=DEBUG\n"
    )
    assert gunicorn_settings(tmp_path) == ["127.0.0.1:8123", 3, 5, "debug"]
    assert gunicorn_settings(tmp_path, WEB_CONCURRENCY="1") == ["127.0.0.1:8123", 1, 5, "debug"]


# A value for every setting the service reads, none of them its default.
SERVICE = {
    "MODEL_DIR": "elsewhere/model", "MODEL_URI": "models:/from-dotenv@production",
    "MODEL_NAME": "digits", "MODEL_VARIANT": "tflite-int8", "METRICS_FILE": "m.json",
    "MAX_IMAGES": "7", "MAX_CONTENT_LENGTH": "1234", "MAX_IMAGE_PIXELS": "999",
    "API_KEY": "key-1", "ADMIN_KEY": "key-2", "MODEL_FOLLOW_S": "3.5",  # pragma: allowlist secret
    "PREDICTION_LOG": "p.db", "PREDICTION_LOG_SYNC": "true", "EVENTS_URL": "redis://h:1/0",
    "EVENTS_PREFIX": "pfx", "EVENTS_MAXLEN": "11", "EVENTS_IMAGE_SHARE": "0.5",
    "EVENTS_BUFFER": "12", "EVENTS_FEEDBACK_TTL_S": "13", "STATE_DIR": "st",
    "RELOAD_POLL_S": "2.5", "TF_THREADS": "2", "DRIFT_REPORT": "d.json", "DRIFT_POLL_S": "4.5",
    "LOG_LEVEL": "DEBUG", "GIT_COMMIT": "abc1234",
}  # fmt: skip
# Who reads the rest of what .env.example documents (each checked where it is read).
# The stack's published ports (docker-compose.yml), each movable from .env.
PORTS = ("API_PORT", "MLFLOW_PORT", "PROMETHEUS_PORT", "ALERTMANAGER_PORT", "GRAFANA_PORT",
         "MINIO_CONSOLE_PORT")  # fmt: skip
OTHER_READERS = {
    "BIND": "gunicorn.conf.py (above)",
    "WEB_CONCURRENCY": "gunicorn.conf.py (above)",
    "GUNICORN_THREADS": "gunicorn.conf.py (above)",
    "MLFLOW_TRACKING_URI": "MLflow's client (test_mnist_command: the error names it)",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "MLflow's client (exported into the environment)",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "MLflow's client (exported into the environment)",
    "SHADOW_MODEL_URI": "mnist shadow (test_mnist_command: the error names it)",
    "POSTGRES_USER": "docker compose",
    "POSTGRES_PASSWORD": "docker compose",  # pragma: allowlist secret
    "MINIO_ROOT_USER": "docker compose",
    "MINIO_ROOT_PASSWORD": "docker compose",  # pragma: allowlist secret
    "GRAFANA_ADMIN_PASSWORD": "docker compose",  # pragma: allowlist secret
    "COMPOSE_PROJECT_NAME": "docker compose",
    "COMPOSE_PROFILES": "docker compose itself (the services' profiles)",
    "PYTHON_IMAGE": "docker compose",
    "POSTGRES_IMAGE": "docker compose",
    "MINIO_IMAGE": "docker compose",
    "REDIS_IMAGE": "docker compose",
    "PROMETHEUS_IMAGE": "docker compose",
    "ALERTMANAGER_IMAGE": "docker compose",
    "GRAFANA_IMAGE": "docker compose",
    "MONITOR_EVERY_S": "docker compose",
    **dict.fromkeys(PORTS, "docker compose"),
}


def documented() -> set[str]:
    """Every variable `.env.example` names (``NAME=`` in its comments)."""
    text = (PROJECT_ROOT / ".env.example").read_text()
    return set(re.findall(r"\b([A-Z][A-Z0-9_]{2,})=", text))


def test_every_documented_variable_has_a_reader_that_is_checked() -> None:
    assert documented() == set(SERVICE) | set(OTHER_READERS)
    compose = (PROJECT_ROOT / "docker-compose.yml").read_text()
    for name, reader in OTHER_READERS.items():
        if reader == "docker compose":
            assert "${" + name in compose, name


def test_the_service_reads_every_setting_from_the_env_file_and_the_environment_wins(
    tmp_path: Path,
) -> None:
    (tmp_path / ".env").write_text("".join(f"{k}={v}\n" for k, v in SERVICE.items()))
    program = (
        "import json, sys; from pathlib import Path; from app.settings import Settings;"
        "s = Settings.from_env(Path.cwd());"
        "print(json.dumps({k.upper(): (v.get_secret_value() if hasattr(v, 'get_secret_value')"
        " else str(v).lower() if isinstance(v, bool) else str(v)) for k, v in s}))"
    )
    clean = {k: v for k, v in os.environ.items() if k not in SERVICE}
    clean["PYTHONPATH"] = os.pathsep.join([str(PROJECT_ROOT), str(PROJECT_ROOT / "src")])

    def seen(**env: str) -> dict[str, str]:
        result = subprocess.run(
            [sys.executable, "-c", program],
            cwd=tmp_path, env={**clean, **env}, capture_output=True, text=True, check=True,
        )  # fmt: skip
        return dict(json.loads(result.stdout))

    assert seen() == SERVICE
    assert seen(MAX_IMAGES="8")["MAX_IMAGES"] == "8"
