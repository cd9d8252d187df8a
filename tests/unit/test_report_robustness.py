"""The pull-request report's robustness section: each shift's accuracy on both sides, its change."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from mnist_contracts import paths
from mnist_pipeline.markdown import rows
from mnist_pipeline.ops.report import Side, robustness_section
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
