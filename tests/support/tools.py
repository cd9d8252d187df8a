"""What a marked test needs from the machine, and what happens when it is missing.

A test marked ``docker``, ``browser``, ``spark``, ``redis``, ``postgres`` or ``alerting`` (or one
that calls :func:`require`) needs a tool this module can look for. Locally a missing tool skips
the test with the reason; with ``CI=true`` it fails it, so a green CI means the whole suite ran.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.browser import find_chromium

SKIP_PREFIX = "missing tool"


def _docker() -> str | None:
    if shutil.which("docker") is None:
        return "no docker command on PATH (.ci/run installs docker.io)"
    try:
        info = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"docker info failed: {err}"
    if info.returncode != 0:
        last = (info.stderr.strip().splitlines() or ["no output"])[-1]
        return f"no Docker engine running ({last}); .ci/run starts dockerd"
    return None


def _browser() -> str | None:
    if importlib.util.find_spec("playwright") is None:
        return "no playwright package (make setup installs it)"
    if find_chromium() is None:
        return "no Chromium or Chrome on PATH (.ci/run installs Debian's chromium)"
    return None


def _spark() -> str | None:
    if importlib.util.find_spec("pyspark") is None:
        return "no pyspark: make setup-spark (make test runs it)"
    try:
        version = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=60)
    except OSError:
        return "no java for Spark (.ci/run installs openjdk-17-jre-headless)"
    if not re.search(r'version "(1[7-9]|[2-9]\d)', version.stderr):
        return "Spark needs Java 17 or newer (.ci/run installs openjdk-17-jre-headless)"
    return None


def _which(command: str, how: str) -> Callable[[], str | None]:
    def check() -> str | None:
        return None if shutil.which(command) else f"no {command} on PATH ({how})"

    return check


def _postgres() -> str | None:
    if list(Path("/usr/lib/postgresql").glob("*/bin/initdb")) or shutil.which("initdb"):
        return None
    return "no PostgreSQL server binaries (initdb); .ci/run installs postgresql"


def _alerting() -> str | None:
    for command, package in (("prometheus", "prometheus"),
                             ("prometheus-alertmanager", "prometheus-alertmanager")):  # fmt: skip
        if shutil.which(command) is None:
            return f"no {command} on PATH (.ci/run installs {package})"
    return None


def _stack() -> str | None:
    if (reason := _docker()) is not None:
        return reason
    # The compose `make stack` would use: docker/stack.sh makes the choice, once for everyone.
    root = Path(__file__).resolve().parents[2]
    chosen = subprocess.run(["bash", str(root / "docker/stack.sh"), "compose"],
                            capture_output=True, text=True, check=False)  # fmt: skip
    return None if chosen.returncode == 0 else chosen.stderr.strip()


def _kustomize() -> str | None:
    """kubectl with kustomize v4 or later (replicas and inline patches; Debian's 1.20 has v2)."""
    if shutil.which("kubectl") is None:
        return "no kubectl on PATH (GitHub's runners and this project's machines have one)"
    found = subprocess.run(["kubectl", "version", "--client"], capture_output=True, text=True,
                           check=False).stdout  # fmt: skip
    version = re.search(r"Kustomize Version: v(\d+)", found)
    if version is None or int(version.group(1)) < 4:
        return f"kubectl's kustomize is older than v4 ({found.strip()!r}): install a newer kubectl"
    return None


# Mark (or tool) name -> the check; a check returns why the tool is missing, or None.
CHECKS: dict[str, Callable[[], str | None]] = {
    "docker": _docker,
    "browser": _browser,
    "spark": _spark,
    "redis": _which("redis-server", ".ci/run installs redis-server"),
    "postgres": _postgres,
    "promtool": _which("promtool", ".ci/run installs prometheus"),
    "amtool": _which("amtool", ".ci/run installs prometheus-alertmanager"),
    "docker-compose": _which("docker-compose", ".ci/run installs Debian's docker-compose"),
    "alerting": _alerting,
    "stack": _stack,
    "kustomize": _kustomize,
}


@functools.cache
def missing(tool: str) -> str | None:
    """Why ``tool`` cannot be used on this machine, or None when it can (checked once)."""
    return CHECKS[tool]()


def in_ci() -> bool:
    """True in CI (``CI=true``, as GitHub and ``.ci/run`` set it)."""
    return os.environ.get("CI", "").lower() == "true"


def require(tool: str) -> None:
    """Skip the running test when ``tool`` is missing; in CI, fail it instead."""
    reason = missing(tool)
    if reason is None:
        return
    message = f"{SKIP_PREFIX} {tool}: {reason}"
    if in_ci():
        pytest.fail(f"{message} (CI=true: a missing tool fails, it never skips)", pytrace=False)
    pytest.skip(message)
