"""The documentation: a site that builds strictly, a README that is a map, figures from reports.

``mkdocs build --strict`` runs here as ``make docs-site`` does: a broken link, a missing anchor
or a page left out of the navigation fails. A figure (a number with a unit) in the README or a
page must sit in a generated block (``scripts/render_docs.py`` renders it from a committed
report) unless the allow-list below says why it is not a measurement.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import PROJECT_ROOT

MKDOCS = Path(sys.executable).parent / "mkdocs"
FIGURE = re.compile(
    r"(?<![\w.:/#-])\d[\d,]*(?:\.\d+)?\s?"
    r"(?:%|ms|s|min|minutes|seconds|MB|GB|MiB|KB|kB|x|req/s|images/s|points|errors|mistakes)"
    r"(?![\w/])|\bp = \d\.\d+"  # a measurement's unit, or a p-value
)
BLOCK = re.compile(r"<!-- generated: (\w+) -->.*?<!-- /generated: \1 -->", re.S)
CODE = re.compile(r"```.*?```|`[^`\n]*`", re.S)
DIGEST = re.compile(r"sha256:[0-9a-f]{12}")
# Figures that are not measurements: settings, thresholds, targets and conventions.
ALLOWED: dict[str, set[str]] = {
    "*": {"95%"},  # a 95% interval: the statistics' convention, not a result
    # Each runbook quotes its alert's threshold and duration from monitoring/alerts.yml.
    "docs/runbooks/high-error-rate.md": {"1%", "10 minutes"},
    "docs/runbooks/low-confidence.md": {"5%", "90%", "30 minutes"},
    "docs/runbooks/service-down.md": {"2 minutes"},
    "docs/runbooks/slow-predictions.md": {"50 ms", "10 minutes"},
    "docs/CANDIDATES.md": {"99.70%"},  # the target, not a result
    "docs/DEPLOYMENT.md": {
        "10 s",  # Docker's default stop grace period
        "30 s",  # Gunicorn's graceful_timeout; MODEL_FOLLOW_S's default
        "2 s", "1 s",  # gunicorn.conf.py's keepalive; the follow test's interval
        "3 s",  # how often bench-durability kills a worker (its setting)
        "1600 MiB", "70%",  # the Deployment's memory request; the HPA's CPU target
        "10 minutes",  # the monitor CronJob's schedule
    },
    "docs/experiments.md": {"80%", "115%"},  # the robustness shifts' scales (their settings)
    "docs/monitoring.md": {"25.00%"},  # the disagreement the shadow test builds in
    "docs/serving.md": {"5 ms", "0.6x", "1x"},  # the log writer's linger; the goal; a bound
    "docs/testing.md": {"30 minutes", "80%"},  # the suite's budget; the coverage floor
}  # fmt: skip


def documents() -> list[Path]:
    """The README and the site's pages (the example report is itself a report: excluded)."""
    pages = sorted((PROJECT_ROOT / "docs").rglob("*.md"))
    return [PROJECT_ROOT / "README.md", *(p for p in pages if "examples" not in p.parts)]


def loose_figures(path: Path) -> list[str]:
    """Figures outside generated blocks and code, not on the allow-list; and model digests
    outside generated blocks, code included (a quoted digest goes stale with the next model)."""
    outside = BLOCK.sub("", path.read_text())
    text = CODE.sub("", outside)
    allowed = ALLOWED["*"] | ALLOWED.get(str(path.relative_to(PROJECT_ROOT)), set())
    figures = [m.group(0) for m in FIGURE.finditer(text) if m.group(0) not in allowed]
    return figures + DIGEST.findall(outside)


def build(root: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(MKDOCS), "build", "--strict", "--site-dir", str(out)],
        cwd=root, capture_output=True, text=True, check=False,
        env={"PATH": "/usr/bin:/bin", "NO_MKDOCS_2_WARNING": "1"},
    )  # fmt: skip


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    done = build(PROJECT_ROOT, tmp_path / "site")
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "site/index.html").is_file()
    assert (tmp_path / "site/serving/index.html").is_file()


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        (lambda docs: (docs / "orphan.md").write_text("# Left out\n"), "orphan.md"),
        (lambda docs: (docs / "index.md").write_text("[gone](nowhere.md)\n"), "nowhere.md"),
        (lambda docs: (docs / "index.md").write_text("[gone](serving.md#no-such-anchor)\n"),
         "no-such-anchor"),
    ],
    ids=["page left out of the navigation", "broken link", "missing anchor"],
)  # fmt: skip
def test_the_strict_build_fails_on(tmp_path: Path, damage: object, says: str) -> None:
    root = tmp_path / "project"
    root.mkdir()
    shutil.copy(PROJECT_ROOT / "mkdocs.yml", root)
    shutil.copytree(PROJECT_ROOT / "docs", root / "docs")
    damage(root / "docs")  # type: ignore[operator]
    done = build(root, tmp_path / "site")
    assert done.returncode != 0
    assert says in done.stderr


def test_the_readme_is_a_map() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 280
    headings = re.findall(r"^## (.+)$", readme, re.M)
    contents = readme[readme.index("## Contents") : readme.index("## The system")]
    for heading in headings[1:]:  # every section is in the table of contents
        assert f"[{heading}](#" in contents, heading
    for needed in ("make repro", "make serve", "http://127.0.0.1:8000/", "curl", "make mlflow-ui"):
        assert needed in readme, needed
    # Every page of the site is on the README's map (the runbooks through their index).
    mapped = set(re.findall(r"\]\(docs/([\w/.-]+\.md)\)", readme))
    pages = {str(p.relative_to(PROJECT_ROOT / "docs")) for p in documents()[1:]}
    runbooks = {p for p in pages if p.startswith("runbooks/") and not p.endswith("README.md")}
    assert pages - mapped <= runbooks | {"index.md"}


@pytest.mark.parametrize("path", documents(), ids=lambda p: str(p.relative_to(PROJECT_ROOT)))
def test_every_figure_comes_from_a_report(path: Path) -> None:
    assert loose_figures(path) == [], "type no figure by hand: put it in a generated block"


def test_the_figure_check_can_fail(tmp_path: Path) -> None:
    page = tmp_path / "docs/page.md"
    page.parent.mkdir()
    page.write_text("It trains in 201 s, makes 40 errors, p = 0.82, and answers in 0.58 ms.\n")
    text = CODE.sub("", BLOCK.sub("", page.read_text()))
    assert [m.group(0) for m in FIGURE.finditer(text)] == ["201 s", "40 errors", "p = 0.82",
                                                           "0.58 ms"]  # fmt: skip
