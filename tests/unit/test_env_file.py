"""`.env` reaches the settings Gunicorn reads before the app exists, and the environment wins."""

from __future__ import annotations

import json
import os
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
