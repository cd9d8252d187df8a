"""``scripts/smoke_test.py``, the deploy workflow's check, against a real service on loopback.

Gunicorn serves the small model that reads real digits; the smoke test must pass against it,
and fail with one line (exit 1) on a wrong digest or an address where nothing answers.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mnist_contracts.model import read_identity
from mnist_pipeline.dataset import Split
from tests.support import PROJECT_ROOT
from tests.support.gunicorn_server import Server, gunicorn_server
from tests.support.servers import free_port

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("digit-model")]
SMOKE = [sys.executable, str(PROJECT_ROOT / "scripts/smoke_test.py")]


@pytest.fixture(scope="module")
def server(
    digit_model: tuple[Path, Split], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    env = {"MODEL_DIR": str(digit_model[0])}
    with gunicorn_server(tmp_path_factory.mktemp("smoke"), env, workers=1) as found:
        yield found


def smoke(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SMOKE, *args], capture_output=True, text=True, timeout=120, check=False)


def test_the_smoke_test_passes_on_the_model_it_expects(
    server: Server, digit_model: tuple[Path, Split]
) -> None:
    digest = read_identity(digit_model[0]).digest
    done = smoke(server.url, "--digest", digest, "--timeout", "10")
    assert done.returncode == 0, done.stderr
    assert digest in done.stdout


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--digest", "sha256:" + "0" * 64], "not the expected sha256:0000"),
        (["--timeout", "0"], "not ready after 0 s"),
    ],
    ids=["wrong model", "nothing answers"],
)
def test_the_smoke_test_fails_in_one_line(server: Server, args: list[str], says: str) -> None:
    url = server.url if "--digest" in args else f"http://127.0.0.1:{free_port()}"
    done = smoke(url, *args)
    assert done.returncode == 1
    assert says in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
