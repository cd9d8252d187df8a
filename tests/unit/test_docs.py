"""The generated blocks of the README and the docs are rendered from their sources, and stay so."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from types import ModuleType

import pytest

from tests.support import PROJECT_ROOT


def render_docs() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "render_docs", PROJECT_ROOT / "scripts/render_docs.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_documents_match_the_reports() -> None:
    docs = render_docs()
    for document in docs.DOCUMENTS:
        text = document.read_text()
        assert docs.render(text) == text, f"{document.name} differs from reports/: run `make docs`"


# Generated from the project itself, not measured: they stay off the benchmarks page.
NOT_MEASURED = {"repro_line", "make_targets", "settings", "cli"}


def test_every_table_is_in_the_documents_once_and_every_measured_one_on_the_benchmarks_page() -> (
    None
):
    docs = render_docs()
    benchmarks = PROJECT_ROOT / "docs/benchmarks.md"
    names = [
        name
        for document in docs.DOCUMENTS
        if document != benchmarks
        for name in docs.blocks(document.read_text())
    ]
    only_there = {"pipeline", "compression", "stack"}  # the benchmarks page explains these
    assert sorted(names) == sorted(set(docs.TABLES) - only_there)
    assert sorted(docs.blocks(benchmarks.read_text())) == sorted(set(docs.TABLES) - NOT_MEASURED)


def test_a_changed_report_changes_the_readme(tmp_path: Path) -> None:
    docs = render_docs()
    reports = tmp_path / "reports"
    shutil.copytree(PROJECT_ROOT / "reports", reports, ignore=shutil.ignore_patterns("pr", "drift"))
    metrics = json.loads((reports / "metrics.json").read_text())
    metrics["test"]["accuracy"] = 0.5
    (reports / "metrics.json").write_text(json.dumps(metrics))
    readme = (PROJECT_ROOT / "README.md").read_text()
    stale = docs.render(readme, reports)
    assert stale != readme
    assert "test accuracy 0.5000" in stale
    benchmarks = (PROJECT_ROOT / "docs/benchmarks.md").read_text()
    assert "50.00%" in docs.render(benchmarks, reports)  # the compression table


def test_an_unknown_table_is_an_error() -> None:
    docs = render_docs()
    with pytest.raises(KeyError):
        docs.render("<!-- generated: nope -->\n<!-- /generated: nope -->\n")
