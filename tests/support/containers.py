"""Helpers for a running service container, shared by the container tests and bench-image."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable

import requests

from tests.support.waiting import wait_until

# Every gunicorn process's pid and resident memory (kB), from /proc inside the container.
_RSS = (
    'for p in /proc/[0-9]*; do [ "$(cat $p/comm 2>/dev/null)" = gunicorn ] && '
    "echo $(basename $p) $(awk '/VmRSS/ {print $2}' $p/status); done; true"
)


def wait_ready(url: str, started: float, timeout: float, alive: Callable[[], bool]) -> float:
    """Poll ``url/health/ready`` until it answers 200; seconds since ``started`` (monotonic).

    Raises:
        TimeoutError: If it is not ready within ``timeout`` seconds, or ``alive()`` turns false.
    """
    wait_until(lambda: requests.get(f"{url}/health/ready", timeout=2).ok, timeout,
               interval=0.2, what=f"{url} to be ready", alive=alive)  # fmt: skip
    return time.monotonic() - started


def gunicorn_rss_kb(container: str) -> list[tuple[int, int]]:
    """``(pid, resident kB)`` of every gunicorn process in ``container``, by pid (master first)."""
    out = subprocess.run(
        ["docker", "exec", container, "sh", "-c", _RSS],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout  # fmt: skip
    return sorted((int(pid), int(kb)) for pid, kb in (line.split() for line in out.splitlines()))
