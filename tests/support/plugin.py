"""The suite's pytest plugin: marks say what a test needs, and the harness checks it.

Registered by ``tests/conftest.py``; also loaded by the harness's own tests in a sub-run.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Generator
from pathlib import Path

import pytest

from tests.support.tools import CHECKS, SKIP_PREFIX, require

# Marks that need something beyond Python and a few seconds; `make test-fast` deselects them all.
HEAVY_MARKS = ("slow", "docker", "browser", "spark", "redis", "postgres", "s3", "alerting", "stack")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Before a marked test (and its fixtures) runs, the tools its marks name must be there."""
    for name in sorted({mark.name for mark in item.iter_markers()} & CHECKS.keys()):
        require(name)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One line naming the tools whose absence skipped tests, and how many each."""
    counts: Counter[str] = Counter()
    for report in terminalreporter.stats.get("skipped", []):
        reason = str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else ""
        reason = reason.removeprefix("Skipped: ")
        if reason.startswith(SKIP_PREFIX):
            counts[reason.removeprefix(SKIP_PREFIX).split(":")[0].strip()] += 1
    if counts:
        listed = ", ".join(f"{tool} ({n} tests)" for tool, n in sorted(counts.items()))
        terminalreporter.write_line(f"skipped for missing tools: {listed}; CI=true fails instead")


# Setup seconds of every shared (session or module) fixture, for `make bench-tests`: written at
# the end of the session to $BENCH_FIXTURES (one file per xdist worker) when it is set.
_fixture_seconds: list[dict[str, object]] = []


@pytest.hookimpl(hookwrapper=True)
def pytest_fixture_setup(
    fixturedef: pytest.FixtureDef[object], request: pytest.FixtureRequest
) -> Generator[None, None, None]:
    """Time the setup of shared fixtures (what the suite builds once and reuses)."""
    started = time.perf_counter()
    yield
    if fixturedef.scope in ("session", "module", "package"):
        where = getattr(request.node, "nodeid", "")
        _fixture_seconds.append({
            "fixture": fixturedef.argname, "scope": fixturedef.scope, "for": where,
            "seconds": round(time.perf_counter() - started, 2),
        })  # fmt: skip


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Write the shared fixtures' setup times where ``make bench-tests`` asked for them."""
    target = os.environ.get("BENCH_FIXTURES")
    if target and _fixture_seconds:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        path = Path(target)
        path.mkdir(parents=True, exist_ok=True)
        (path / f"{worker}.json").write_text(json.dumps(_fixture_seconds, indent=1))
