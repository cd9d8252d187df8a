"""Experiments you can compare, and the pull-request report, in a temporary repository."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest

from mnist_pipeline.markdown import rows
from tests.support import mnist
from tests.support.project_repo import commit_all, mlflow_query, run, set_params

pytestmark = pytest.mark.slow


def report(repo: Path, base: str, *extra: str) -> str:
    cmd = mnist("report", "--base", base, "--out", "reports/pr")
    run([*cmd, *extra], repo)
    return (repo / "reports/pr/report.md").read_text()


def flips(base_text: str, new_text: str) -> tuple[int, int]:
    """(newly wrong, newly right) computed by hand from two confusion.json records."""
    base, new = json.loads(base_text), json.loads(new_text)
    b = sum(o["predicted"] == o["actual"] != n["predicted"] for o, n in zip(base, new, strict=True))
    c = sum(o["predicted"] != o["actual"] == n["predicted"] for o, n in zip(base, new, strict=True))
    return b, c


def test_report_on_a_branch_against_the_baseline_and_its_seed_noise(
    repo_after_repro: Path,
) -> None:
    """`make seeds` on main, then a branch with one more epoch: the full report against main."""
    repo = repo_after_repro
    run(mnist("seeds", "--n", "2"), repo)
    seeds = json.loads((repo / "reports/seeds.json").read_text())
    assert seeds["seeds"] == [1, 2]
    assert len(seeds["test_accuracy"]) == 2
    assert seeds["std"] >= 0
    table = run(["dvc", "exp", "show", "--csv", "--no-pager"], repo, stdout_only=True)
    assert {"seed-1", "seed-2"} <= {r["Experiment"] for r in csv.DictReader(io.StringIO(table))}
    commit_all(repo, "seed noise of the baseline")

    run(["git", "checkout", "-q", "-b", "more-epochs"], repo)
    set_params(repo, train={"epochs": 2})
    run(["dvc", "repro"], repo)

    markdown = report(repo, "main")
    assert "## Model report: workspace vs main" in markdown
    base_record = run(["git", "show", "main:reports/plots/confusion.json"], repo, stdout_only=True)
    b, c = flips(base_record, (repo / "reports/plots/confusion.json").read_text())
    assert b + c > 0  # one more epoch changes some answers
    found = re.search(
        r"Verdict: \*\*(better|worse|no detectable change)\*\*: accuracy [+-]\d+\.\d\d points "
        r"\(95% CI [+-]\d+\.\d\d to [+-]\d+\.\d\d\).* newly wrong (\d+), newly right (\d+), "
        r"p = ([\d.e-]+)",
        markdown,
    )
    assert found, markdown[:600]
    assert (int(found.group(2)), int(found.group(3))) == (b, c)
    assert f"{b} images newly wrong, {c} newly right" in markdown
    assert "#### Seed noise" in markdown
    assert re.search(r"Verdict: .*(inside|outside) the seed noise \(±2 std", markdown)
    assert any(
        row[:4] == ["digit", "images", "base recall", "new recall"] for row in rows(markdown)
    )
    assert "#### Calibration" in markdown
    cost = next(line for line in markdown.splitlines() if line.startswith("| single image"))
    assert re.search(r"\*\*\d+\.\d\dx\*\*", cost)  # both models measured: a ratio
    row = next(row for row in rows(markdown) if row[0] == "test.accuracy")
    old, new, change = row[1:4]
    assert float(new) - float(old) == pytest.approx(float(change), abs=1e-6)
    assert ["train.epochs", "1", "2"] in rows(markdown)
    assert "#### Robustness" in markdown
    identity = next(row for row in rows(markdown) if row[0] == "identity")
    assert identity[2:4] == [f"{100 * float(old):.2f}%", f"{100 * float(new):.2f}%"]
    for image in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown):
        assert (repo / "reports/pr" / image).stat().st_size > 1000, image


def test_temp_experiments_log_to_the_main_store_and_are_reported_by_name(
    repo_after_repro: Path,
) -> None:
    repo = repo_after_repro
    for epochs in (2, 3):  # the baseline has 1: an unchanged stage would not run
        run(
            ["dvc", "exp", "run", "--temp", "-n", f"ep{epochs}", "-S", f"train.epochs={epochs}"],
            repo,
        )
    names = mlflow_query(
        repo,
        "e = c.get_experiment_by_name('mnist-classifier')\n"
        "runs = c.search_runs([e.experiment_id])\n"
        "print(sorted(r.data.tags.get('dvc.exp_name', '-') for r in runs))",
    )
    assert names == "['-', 'ep2', 'ep3']"
    assert not list((repo / ".dvc/tmp").rglob("mlflow.db"))

    markdown = report(repo, "main", "--rev", "ep2", "--no-cost")
    assert "## Model report: ep2 vs main" in markdown
    assert "no metrics" not in markdown
    assert re.search(r"Verdict: \*\*(better|worse|no detectable change)\*\*", markdown)
    assert ["train.epochs", "1", "2"] in rows(markdown)
    row = next(row for row in rows(markdown) if row[0] == "test.accuracy")
    assert "-" not in row  # both sides have the metric


def test_a_base_without_per_image_predictions(repo_after_repro: Path) -> None:
    repo = repo_after_repro
    run(["git", "checkout", "-q", "-b", "old"], repo)
    run(["git", "rm", "-q", "--cached", "reports/plots/confusion.json"], repo)
    run(["git", "commit", "-qm", "a base from before per-image records"], repo)
    run(["git", "checkout", "-q", "-f", "main"], repo)
    markdown = report(repo, "old", "--no-cost")
    assert "### No per-image predictions at the base" in markdown
    assert "Verdict: **" in markdown


def test_report_when_the_base_has_no_metrics(repo_after_repro: Path) -> None:
    repo = repo_after_repro
    run(["git", "reset", "-q", "HEAD~1"], repo)  # results in the workspace, not in main
    markdown = report(repo, "main")
    assert "### No baseline" in markdown
    assert "Verdict: **no baseline**" in markdown
    assert (repo / "reports/pr/confusion.png").is_file()


def test_unknown_base_is_one_line(repo: Path) -> None:
    result = run_failing(mnist("report", "--base", "nope"), repo)
    assert (
        result == "mnist report: error: unknown base revision 'nope'; fetch it (git fetch) first\n"
    )


def run_failing(cmd: list[str], repo: Path) -> str:
    import os
    import subprocess

    env = {**os.environ, "PYTHONPATH": str(repo / "src")}
    result = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 2
    return result.stderr
