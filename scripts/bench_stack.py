"""Benchmark ``make stack``: from a fresh clone to the first prediction, cold and warm.

Runs the suite's own end-to-end stack test (``tests/e2e/test_stack.py``: a fresh clone with tiny
training params runs ``make stack``, is used, switched and removed), once per compose given, and
reads the figures the test writes (``STACK_FIGURES``):

- ``make_stack_s``: ``make stack`` until it returns (the api serving ``@production``);
- ``first_prediction_s``: from the start of ``make stack`` to the first answered ``/predict``;
- ``test_s``: the whole test, which is what the stack adds to the suite (on one xdist worker).

The first run is cold: the images the stack and the test build (the Python base, the stand-ins,
the service, monitor and MLflow images) are removed first; the package caches (uv, pip) are not.
Later runs are warm. Writes ``reports/stack.json``.

Usage: ``make bench-stack`` (needs a Docker engine; ``COMPOSES="docker compose;docker-compose"``
to choose, default: every compose installed, Compose v2 first).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "reports/stack.json"
TEST = "tests/e2e/test_stack.py"
# What a cold run starts without: every image the test and `make stack` build (docker/lib.sh
# names the base `local/python:*`; the stand-ins are `local/standin-*`; the test's own tags).
COLD_IMAGES = ("local/python", "local/standin-*", "mnist-api", "mnist-monitor", "mnist-e2e-*")


def run(*cmd: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` in the project; exit with its output's tail on failure."""
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0:
        output = (done.stdout + done.stderr)[-3000:]
        raise SystemExit(f"bench-stack: {' '.join(cmd)} failed:\n{output}")
    return done


def installed_composes() -> list[str]:
    """Compose v2 and Debian's 1.29, those that answer ``version``."""
    found = []
    for command in ("docker compose", "docker-compose"):
        probe = subprocess.run([*command.split(), "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            found.append(command)
    return found


def compose_version(command: str) -> str:
    """The compose's own version line."""
    return run(*command.split(), "version").stdout.splitlines()[0].strip()


def remove_images() -> list[str]:
    """Remove every image a cold run must build; return their references."""
    removed: list[str] = []
    for pattern in COLD_IMAGES:
        refs = run("docker", "images", "--format", "{{.Repository}}:{{.Tag}}",
                   "--filter", f"reference={pattern}").stdout.split()  # fmt: skip
        if refs:
            run("docker", "rmi", "-f", *refs)
            removed += refs
    run("docker", "image", "prune", "-f")  # the dangling layers of earlier builds
    return sorted(removed)


def measure(command: str, cold: bool) -> dict[str, Any]:
    """Run the stack test once under ``command``; return its figures."""
    removed = remove_images() if cold else []
    with tempfile.TemporaryDirectory() as scratch:
        figures_path = Path(scratch) / "figures.json"
        env = {
            **os.environ,
            "MNIST_COMPOSE": command,
            "STACK_FIGURES": str(figures_path),
        }
        started = time.monotonic()
        run(sys.executable, "-m", "pytest", TEST, "-q", "-p", "no:cacheprovider", "-n", "0",
            "--no-cov", env=env)  # fmt: skip
        wall = time.monotonic() - started
        figures: dict[str, Any] = json.loads(figures_path.read_text())
    return {
        "compose": command,
        "compose_version": compose_version(command),
        "cold": cold,
        "images_removed": len(removed),
        "make_stack_s": figures["make_stack_s"],
        "first_prediction_s": figures["first_prediction_s"],
        "test_s": figures["test_s"],
        "pytest_wall_s": round(wall, 1),  # with the service images the test builds first
    }


def main(argv: list[str] | None = None) -> int:
    """Measure, then write ``reports/stack.json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warm", action="store_true", help="keep the images: no cold run")
    args = parser.parse_args(argv)
    chosen = os.environ.get("COMPOSES")
    composes = chosen.split(";") if chosen else installed_composes()
    if not composes:
        raise SystemExit("bench-stack: no compose answers (docker compose v2 or docker-compose)")
    runs = []
    for i, command in enumerate(composes):
        print(f"bench-stack: {command} ({'cold' if i == 0 and not args.warm else 'warm'})")
        runs.append(measure(command, cold=i == 0 and not args.warm))
        print(f"bench-stack: {runs[-1]}")
    suite = json.loads((ROOT / "reports/bench_tests.json").read_text())
    report = {
        "machine": {"cores": os.cpu_count(), "platform": platform.platform()},
        "commit": run("git", "rev-parse", "HEAD").stdout.strip(),
        "docker": run("docker", "version", "--format", "{{.Server.Version}}").stdout.strip(),
        "params": "tiny (the test's): a full-size `make repro` adds its cold time from "
        "reports/bench_pipeline.json",
        "runs": runs,
        # The cold suite the stack test's minutes add to (reports/bench_tests.json, its commit).
        "suite_cold_s": suite["ci_seconds"],
        "suite_commit": suite["commit"],
    }
    REPORT.write_text(json.dumps(report, indent=1) + "\n")
    print(f"bench-stack: wrote {REPORT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
