"""Where a benchmark's figures come from: the machine and the commit, for every report."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def provenance() -> dict[str, object]:
    """The ``machine`` (cores, platform) and short ``commit`` the figures were measured on."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
        check=True,
    ).stdout.strip()  # fmt: skip
    cpu = next(
        (line.split(":", 1)[1].strip() for line in _cpuinfo() if line.startswith("model name")),
        platform.processor(),
    )
    machine = {"cores": os.cpu_count(), "cpu": cpu, "platform": platform.platform()}
    return {"machine": machine, "commit": commit}


def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []
