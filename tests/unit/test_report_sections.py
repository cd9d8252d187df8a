"""The pull-request report's sections read from each side's files: robustness, seed and CV noise."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from mnist_contracts import paths
from mnist_pipeline.markdown import rows
from mnist_pipeline.ops.report import Side, noise_section, robustness_section
from mnist_pipeline.robustness import descriptions


@dataclass(frozen=True)
class FileSide(Side):
    """A side whose files are given in memory instead of read from git."""

    files: dict[str, str] = field(default_factory=dict)

    def read(self, path: str) -> str | None:
        return self.files.get(path)


def side(label: str, accuracies: dict[str, float] | None) -> FileSide:
    if accuracies is None:
        return FileSide(label, label, {})
    body = {"robustness": {n: {"accuracy": a, "change": 0.0} for n, a in accuracies.items()}}
    return FileSide(label, label, {str(paths.ROBUSTNESS_FILE): json.dumps(body)})


def test_each_shift_shows_both_sides_and_the_change_in_points() -> None:
    names = list(descriptions())
    base = side("main", dict.fromkeys(names, 0.95))
    new = side("branch", {**dict.fromkeys(names, 0.95), "thinner": 0.9712})
    table = {row[0]: row for row in rows("\n".join(robustness_section(base, new)))}
    assert set(names) <= set(table)
    assert table["thinner"][2:] == ["95.00%", "97.12%", "+2.12"]
    assert table["identity"][2:] == ["95.00%", "95.00%", "+0.00"]
    assert table["thinner"][1] == descriptions()["thinner"]


def test_a_base_from_before_robustness_reads_n_a_and_neither_side_means_no_section() -> None:
    names = list(descriptions())
    new = side("branch", dict.fromkeys(names, 0.99))
    table = {row[0]: row for row in rows("\n".join(robustness_section(side("main", None), new)))}
    assert table["rotate-ccw"][2:] == ["n/a", "99.00%", "-"]
    assert robustness_section(side("main", None), side("branch", None)) == []
    broken = FileSide("main", "main", {str(paths.ROBUSTNESS_FILE): "{not json"})
    assert robustness_section(broken, side("branch", None)) == []


SEEDS = json.dumps({"std": 0.0005, "seeds": [1, 2, 3, 4, 5], "commit": "abcdef1234567"})
CV = json.dumps({"cv": {"fold_accuracy": [0.991, 0.993, 0.992], "mean": 0.992, "std": 0.001}})
TRAIN_METRICS = str(paths.TRAIN_LIVE_DIR / "metrics.json")


def test_the_cv_spread_shows_beside_the_seed_spread() -> None:
    base = FileSide("main", "main", {str(paths.REPORTS_DIR / "seeds.json"): SEEDS})
    new = FileSide("branch", "branch", {TRAIN_METRICS: CV})
    suffix, lines = noise_section(base, new, 0.0004)
    assert "inside the seed noise" in suffix
    text = "\n".join(lines)
    assert "#### Seed noise" in text
    assert "#### Cross-validation" in text
    assert ["branch", "3", "99.20%", "0.10"] in rows(text)
    assert not any(row[0] == "main" for row in rows(text))  # the base ran no folds


def test_no_spread_at_all_means_no_section_and_a_plain_verdict() -> None:
    broken = FileSide("main", "main", {TRAIN_METRICS: json.dumps({"cv": {"mean": 0.9}})})
    assert noise_section(broken, FileSide("branch", "branch", {}), 0.01) == ("", [])
