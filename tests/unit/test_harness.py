"""The test harness itself: tiers, marks, missing tools and parallel workers."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from _pytest.mark.expression import Expression

from tests.support import PROJECT_ROOT
from tests.support.plugin import HEAVY_MARKS

pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True)
def _sub_runs_report_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sub-runs here must not write into a benchmark's reports (make bench-tests)."""
    monkeypatch.delenv("BENCH_FIXTURES", raising=False)
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)


def makefile_variable(name: str) -> str:
    """The value of a ``NAME := value`` line of the Makefile."""
    found = re.search(rf"^{name} :?= (.*)$", (PROJECT_ROOT / "Makefile").read_text(), re.M)
    assert found, name
    return found.group(1).strip()


def test_the_makefile_and_the_plugin_agree_on_the_heavy_marks() -> None:
    fast = makefile_variable("HEAVY_MARKS")
    assert sorted(fast.split(" or ")) == sorted(HEAVY_MARKS)
    markers = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["tool"]["pytest"][
        "ini_options"
    ]["markers"]
    assert sorted(m.split(":")[0] for m in markers) == sorted(HEAVY_MARKS)


@pytest.mark.slow
def test_test_fast_runs_no_heavy_test_and_the_ci_tiers_run_each_test_once(tmp_path: Path) -> None:
    """One collection of the whole suite, then every tier's selection computed from the marks."""
    dump = tmp_path / "marks.json"
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "tests.support.markdump",
         "-p", "no:cacheprovider", str(PROJECT_ROOT / "tests")],
        cwd=PROJECT_ROOT, env={**os.environ, "MARKDUMP": str(dump)},
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert collected.returncode == 0, collected.stdout[-2000:] + collected.stderr[-2000:]
    marks: dict[str, list[str]] = json.loads(dump.read_text())
    assert len(marks) > 300

    def selected(expression: str) -> set[str]:
        compiled = Expression.compile(expression)
        return {node for node, names in marks.items() if compiled.evaluate(names.__contains__)}

    fast = selected(f"not ({makefile_variable('HEAVY_MARKS')})")
    assert fast
    assert all(not set(marks[node]) & set(HEAVY_MARKS) for node in fast)
    # GitHub's jobs: fast plus the matrix tiers select every test, each exactly once.
    workflow = yaml.safe_load((PROJECT_ROOT / ".github/workflows/ci.yml").read_text())
    tiers = [entry["marks"] for entry in workflow["jobs"]["tier"]["strategy"]["matrix"]["include"]]
    chosen = [fast, *(selected(expression) for expression in tiers)]
    assert sum(len(c) for c in chosen) == len(marks)
    assert set().union(*chosen) == set(marks)


TOOL_TEST = """
import pytest

@pytest.mark.docker
def test_needs_docker():
    pass

def test_needs_nothing():
    pass
"""


def run_with_docker_missing(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, *, ci: bool
) -> pytest.RunResult:
    """A sub-run of one docker-marked test and one plain test, on a PATH without docker."""
    pytester.makeconftest('pytest_plugins = ["tests.support.plugin"]\n')
    pytester.makepyfile(test_tools=TOOL_TEST)
    monkeypatch.setenv("PATH", str(pytester.mkdir("bin")))  # nothing on it, docker included
    monkeypatch.setenv("PYTHONPATH", str(PROJECT_ROOT))
    if ci:
        monkeypatch.setenv("CI", "true")
    else:
        monkeypatch.delenv("CI", raising=False)
    return pytester.runpytest_subprocess("-ra", "-p", "no:cacheprovider", "-p", "no:xdist")


def test_a_missing_tool_skips_locally_and_the_summary_names_it(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run_with_docker_missing(pytester, monkeypatch, ci=False)
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*missing tool docker: no docker command on PATH*"])
    result.stdout.fnmatch_lines(["skipped for missing tools: docker (1 tests); CI=true fails*"])


def test_a_missing_tool_fails_in_ci_naming_the_tool(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run_with_docker_missing(pytester, monkeypatch, ci=True)
    result.assert_outcomes(passed=1, errors=1)  # failed in setup, before the test ran
    result.stdout.fnmatch_lines(["*missing tool docker: no docker command on PATH*CI=true*"])


WORKERS_TEST = """
import json, os
from pathlib import Path
import pytest
from tests.support.servers import s3_server

@pytest.fixture(scope="session")
def s3(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("s3")
    with s3_server(workdir, auth=False) as server:
        yield server, workdir

def test_one(s3):
    server, workdir = s3
    server.client().put_object(Bucket=server.bucket, Key="k", Body=b"x")
    record = {"worker": os.environ["PYTEST_XDIST_WORKER"], "endpoint": server.endpoint,
              "store": str(workdir)}
    with open(os.environ["RECORD"], "a") as out:
        out.write(json.dumps(record) + "\\n")
"""


@pytest.mark.s3
def test_two_workers_starting_the_same_server_get_their_own_port_and_store(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    record = tmp_path / "record.jsonl"
    monkeypatch.setenv("RECORD", str(record))
    monkeypatch.setenv("PYTHONPATH", str(PROJECT_ROOT))
    pytester.makepyfile(test_workers=WORKERS_TEST)
    # --dist each: both workers run the test, so both start the session's server at once.
    result = pytester.runpytest_subprocess("-n", "2", "--dist", "each", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    rows = [json.loads(line) for line in record.read_text().splitlines()]
    assert sorted(r["worker"] for r in rows) == ["gw0", "gw1"]
    assert len({r["endpoint"] for r in rows}) == 2
    assert len({r["store"] for r in rows}) == 2


GROUPED_TEST = """
import os
import pytest

pytestmark = pytest.mark.xdist_group("shared")

@pytest.mark.parametrize("i", range(4))
def test_grouped(i):
    with open(os.environ["RECORD"], "a") as out:
        out.write(os.environ["PYTEST_XDIST_WORKER"] + "\\n")
"""


def test_tests_of_one_xdist_group_run_on_one_worker(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """What ``make test`` relies on to build a module's shared fixture once (--dist loadgroup)."""
    record = tmp_path / "workers.txt"
    monkeypatch.setenv("RECORD", str(record))
    pytester.makepyfile(test_grouped=GROUPED_TEST, test_free="def test_a():\n    pass\n")
    result = pytester.runpytest_subprocess(
        "-n", "2", "--dist", "loadgroup", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=5)
    workers = record.read_text().split()
    assert len(workers) == 4
    assert len(set(workers)) == 1, workers
