"""Benchmark the test suite: what CI costs, cold and warm, and what a developer waits for.

Measures, on a fresh ``git clone`` of HEAD (so only committed files count):

- ``ci_seconds``: ``CI=true bash .ci/run`` with nothing cached: a new venv, empty uv, pip and
  test-venv caches, and none of the images the suite builds (the local base image included);
- ``ci_seconds_warm``: the same command again in the same clone (venv, caches and images kept);
- ``test_fast_seconds``: ``make test-fast`` in that clone;
- ``install_seconds``: ``requirements.lock`` into a new venv with empty caches, by pip and by
  uv's ``pip install`` (``make setup``'s installer).

From the cold run's JUnit report and the harness's fixture timings it keeps the 25 slowest
tests, the summed test seconds of each of CI's tiers (``.github/workflows/ci.yml``), and the
setup seconds of every shared fixture. Writes ``reports/bench_tests.json``; the README renders
its totals (``make docs``). Usage: ``make bench-tests`` (about two CI runs of time), or
``--only cold,fast`` to measure a part: figures not measured keep their previous value and are
listed under ``carried_over``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import yaml
from provenance import provenance

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.support.plugin import HEAVY_MARKS  # noqa: E402 - the marks make test-fast deselects

OUT = ROOT / "reports" / "bench_tests.json"
# What the suite builds and keeps between runs: a cold run starts without them.
IMAGES = [
    "mnist-api:test",
    "mnist-monitor:test",
    "mnist-api:slim-test",
    "local/python:3.11-bookworm",
    # The stack test's stand-ins (docker/stand-in-images.sh), where no image registry answers.
    *(
        f"local/standin-{name}:bookworm"
        for name in ("postgres", "redis", "prometheus", "alertmanager", "minio")
    ),
]


def timed(cmd: list[str], cwd: Path, env: dict[str, str], log: Path) -> float:
    """Run ``cmd`` with output to ``log``; its wall seconds (fails loudly if it fails)."""
    started = time.monotonic()
    with log.open("w") as out:
        result = subprocess.run(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    seconds = time.monotonic() - started
    if result.returncode != 0:
        tail = log.read_text()[-3000:]
        sys.exit(f"bench-tests: {' '.join(cmd)} failed after {seconds:.0f} s:\n{tail}")
    return round(seconds, 1)


def junit_tests(report: Path) -> list[tuple[str, float]]:
    """``(node id, seconds)`` of every test case in a JUnit report, setup and teardown included."""
    cases = ET.parse(report).getroot().iter("testcase")  # noqa: S314 - our own report
    found = []
    for case in cases:
        classname, name = case.get("classname", ""), case.get("name", "")
        module = classname.replace(".", "/")
        node = f"{module}.py::{name}" if module.startswith("tests/") else f"{classname}::{name}"
        # xdist's loadgroup appends "@group" to a grouped test's id: the test's own id is before.
        if node.rfind("@") > node.rfind("]"):
            node = node[: node.rfind("@")]
        found.append((node, float(case.get("time", 0))))
    return found


def fixture_seconds(directory: Path) -> list[dict[str, Any]]:
    """Every shared fixture's setups from all workers, the slowest first."""
    rows: list[dict[str, Any]] = []
    for worker_file in sorted(directory.glob("*.json")):
        for row in json.loads(worker_file.read_text()):
            rows.append({**row, "worker": worker_file.stem})
    return sorted(rows, key=lambda r: -float(r["seconds"]))


def tier_seconds(marks_file: Path, tests: list[tuple[str, float]]) -> dict[str, float]:
    """Summed test seconds of each CI tier (the jobs of ci.yml), from each test's marks."""
    from _pytest.mark.expression import Expression

    marks: dict[str, list[str]] = json.loads(marks_file.read_text())
    workflow = yaml.safe_load((ROOT / ".github/workflows/ci.yml").read_text())
    tiers = {"fast": f"not ({' or '.join(HEAVY_MARKS)})"}
    for entry in workflow["jobs"]["tier"]["strategy"]["matrix"]["include"]:
        tiers[entry["tier"]] = entry["marks"]
    totals = {}
    for tier, expression in tiers.items():
        compiled = Expression.compile(expression)
        chosen = {n for n, names in marks.items() if compiled.evaluate(names.__contains__)}
        totals[tier] = round(sum(s for n, s in tests if n in chosen), 1)
    return totals


def install_seconds(installer: str, work: Path, env: dict[str, str]) -> float:
    """Seconds to install ``requirements.lock`` into a new venv with ``installer``, caches empty."""
    venv, cache = work / f"venv-{installer}", work / f"cache-{installer}"
    python = str(Path(getattr(sys, "_base_executable", sys.executable)))
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    lock = str(ROOT / "requirements.lock")
    if installer == "pip":
        cmd = [str(venv / "bin/pip"), "install", "--quiet", "--no-cache-dir", "-r", lock]
    else:
        uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or "uv"
        cmd = [uv, "pip", "install", "--quiet", "--compile-bytecode", "--cache-dir", str(cache),
               "--python", str(venv / "bin/python"), "-r", lock]  # fmt: skip
    seconds = timed(cmd, work, env, work / f"install-{installer}.log")
    shutil.rmtree(venv)
    shutil.rmtree(cache, ignore_errors=True)
    return seconds


def measure(only: set[str], work: Path) -> dict[str, Any]:
    """Clone HEAD into ``work`` and take the figures named in ``only``."""
    clone = work / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    caches = work / "caches"
    env = {
        **os.environ, "CI": "true",
        "UV_CACHE_DIR": str(caches / "uv"), "PIP_CACHE_DIR": str(caches / "pip"),
        "MNIST_TEST_CACHE": str(caches / "tests"),
        "BENCH_FIXTURES": str(work / "fixtures"),
        "PYTEST_ADDOPTS": f"--junitxml={work / 'junit.xml'}",
    }  # fmt: skip
    for name in ("VIRTUAL_ENV", "DVC_ROOT"):
        env.pop(name, None)
    # As a new user's shell: no venv on PATH (make setup would build the clone's from it).
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(d for d in env["PATH"].split(os.pathsep) if d != venv_bin)
    found: dict[str, Any] = {}
    if "cold" in only:
        if shutil.which("docker"):
            subprocess.run(["docker", "rmi", "-f", *IMAGES], capture_output=True, check=False)
        found["ci_seconds"] = timed(["bash", ".ci/run"], clone, env, work / "cold.log")
        tests = junit_tests(work / "junit.xml")
        found["tests"] = len(tests)
        found["slowest"] = [
            {"test": n, "seconds": round(s, 1)} for n, s in sorted(tests, key=lambda t: -t[1])[:25]
        ]
        found["fixtures"] = fixture_seconds(work / "fixtures")
        marks = work / "marks.json"
        subprocess.run(
            [str(clone / ".venv/bin/python"), "-m", "pytest", "--collect-only", "-q",
             "-p", "tests.support.markdump", "-p", "no:cacheprovider"],
            cwd=clone, env={**env, "MARKDUMP": str(marks), "PYTEST_ADDOPTS": ""},
            capture_output=True, check=True,
        )  # fmt: skip
        found["tier_test_seconds"] = tier_seconds(marks, tests)
    if "warm" in only:
        found["ci_seconds_warm"] = timed(["bash", ".ci/run"], clone, env, work / "warm.log")
    if "install" in only:
        found["install_seconds"] = {
            "pip": install_seconds("pip", work, env),
            "uv": install_seconds("uv", work, env),
        }
    if "fast" in only:
        fast_env = {**env, "PYTEST_ADDOPTS": ""}
        found["test_fast_seconds"] = timed(
            ["make", "--no-print-directory", "test-fast"], clone, fast_env, work / "fast.log"
        )
    return found


def main() -> None:
    """Measure, merge with the figures not measured this time, and write the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only", default="cold,warm,fast,install", help="cold, warm, fast, install (comma list)"
    )
    args = parser.parse_args()
    only = set(args.only.split(","))
    if not only <= {"cold", "warm", "fast", "install"}:
        sys.exit(f"bench-tests: --only takes cold, warm, fast and install, not {args.only}")
    previous = json.loads(OUT.read_text()) if OUT.is_file() else {}
    with tempfile.TemporaryDirectory(prefix="bench-tests-") as tmp:
        found = measure(only, Path(tmp))
    keys = {"cold": ["ci_seconds", "tests", "slowest", "fixtures", "tier_test_seconds"],
            "warm": ["ci_seconds_warm"], "fast": ["test_fast_seconds"],
            "install": ["install_seconds"]}  # fmt: skip
    carried = [
        k for part, names in keys.items() if part not in only for k in names if k in previous
    ]
    report = {
        **{k: previous[k] for k in carried},
        **found,
        **provenance(),
        "carried_over": carried,
        "note": "seconds on this machine; tier_test_seconds sums each tier's tests (setup and "
        "teardown included) from the cold run, as one worker would run them",
    }
    OUT.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report.get(k) for k in ("ci_seconds", "ci_seconds_warm",
                                                 "test_fast_seconds")}))  # fmt: skip


if __name__ == "__main__":
    main()
