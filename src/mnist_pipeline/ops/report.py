"""``mnist-report``: what a change did to the model, as Markdown for a pull request.

Compares the workspace (or ``--rev``) with ``--base``: ``dvc metrics diff`` and ``dvc params diff``
tables with deltas, the confusion matrices and training curves of both sides as PNG images
rendered here (no web service), and a one-line verdict on the main metric (test accuracy).
A base without metrics (the first pull request) gets a "No baseline" section, not a crash.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib as mpl

mpl.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from mnist_pipeline.atomic import atomic_path, write_text
from mnist_pipeline.cli import run_stage
from mnist_pipeline.errors import PipelineError

MAIN_METRIC = "test.accuracy"
METRICS_FILE = "reports/metrics.json"
CONFUSION_FILE = "reports/plots/confusion.json"
_CURVES_DIR = "reports/train/plots/metrics"
CURVES = {
    name: (f"{_CURVES_DIR}/train/{name}.tsv", f"{_CURVES_DIR}/val/{name}.tsv")
    for name in ("loss", "accuracy")
}
HEADLINE = ("test.accuracy", "test.loss", "test.f1_macro", "test.errors")


@dataclass(frozen=True)
class Side:
    """One side of the comparison: a git revision, or the workspace (``rev=None``)."""

    label: str
    rev: str | None

    def read(self, path: str) -> str | None:
        """The file's text at this revision, or None when it does not exist there."""
        if self.rev is None:
            file = Path(path)
            return file.read_text(encoding="utf-8") if file.is_file() else None
        result = subprocess.run(
            ["git", "show", f"{self.rev}:{path}"], capture_output=True, text=True, check=False
        )
        return result.stdout if result.returncode == 0 else None


def _dvc_json(*args: str) -> dict[str, Any]:
    result = subprocess.run(["dvc", *args, "--json"], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise PipelineError(f"dvc {' '.join(args)} failed: {result.stderr.strip()[-300:]}")
    data: dict[str, Any] = json.loads(result.stdout or "{}")
    return data


def _revs(base: Side, new: Side) -> list[str]:
    return [base.rev or "HEAD", *([new.rev] if new.rev else [])]


def metrics_rows(diff: dict[str, Any]) -> list[tuple[str, Any, Any, Any]]:
    """Flatten ``dvc metrics diff --json`` to ``(metric, old, new, delta)`` rows.

    Args:
        diff: DVC's JSON output.

    Returns:
        Rows for the headline metrics first, then every other changed metric.
    """
    rows = {}
    for metrics in diff.get("diff", diff).values():
        for name, change in metrics.items():
            rows[name] = (name, change.get("old"), change.get("new"), change.get("diff"))
    ordered = [rows.pop(name) for name in HEADLINE if name in rows]
    return ordered + [rows[name] for name in sorted(rows)]


def params_rows(diff: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """Flatten ``dvc params diff --json`` to ``(param, old, new)`` rows."""
    return [
        (name, change.get("old"), change.get("new"))
        for params in diff.get("diff", diff).values()
        for name, change in sorted(params.items())
    ]


def verdict(old: float | None, new: float | None) -> str:
    """One line on the main metric.

    Args:
        old: Base test accuracy (None: no baseline).
        new: New test accuracy.

    Returns:
        ``better``/``worse``/``unchanged`` with the numbers.
    """
    if new is None:
        return "**no metrics**: the compared revision has no reports/metrics.json (run dvc repro)"
    if old is None:
        return f"**no baseline**: test accuracy {new:.4f}"
    delta = new - old
    word = "better" if delta > 1e-9 else "worse" if delta < -1e-9 else "unchanged"
    return f"**{word}**: test accuracy {old:.4f} -> {new:.4f} ({delta:+.4f})"


def _fmt(value: Any) -> str:  # noqa: ANN401 - DVC values are numbers, strings or None
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _curve(text: str | None) -> tuple[list[float], list[float]]:
    if not text:
        return [], []
    rows = list(csv.DictReader(io.StringIO(text), delimiter="\t"))
    value = next(k for k in rows[0] if k not in {"step", "timestamp"}) if rows else ""
    return [float(r["step"]) + 1 for r in rows], [float(r[value]) for r in rows]


def draw_curves(sides: list[Side], path: Path) -> None:
    """Loss and accuracy per epoch, train and val, for both sides on the same axes."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, (name, files) in zip(axes, CURVES.items(), strict=True):
        for side, style in zip(sides, ("--", "-"), strict=False):
            for file, split in zip(files, ("train", "val"), strict=True):
                x, y = _curve(side.read(file))
                if x:
                    ax.plot(x, y, style, marker="o", ms=3, label=f"{side.label} {split}")
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp, tmp.open("wb") as fh:
        fig.savefig(fh, format="png", dpi=80, metadata={"Software": None})
    plt.close(fig)


def confusion(text: str | None) -> np.ndarray | None:
    """The 10x10 confusion matrix from DVC's confusion-plot rows."""
    if not text:
        return None
    matrix = np.zeros((10, 10), np.int64)
    for row in json.loads(text):
        matrix[int(row["actual"]), int(row["predicted"])] += 1
    return matrix


def draw_confusions(sides: list[Side], path: Path) -> None:
    """Both sides' confusion matrices (errors only: the diagonal is left blank)."""
    matrices = [(side, confusion(side.read(CONFUSION_FILE))) for side in sides]
    present = [(s, m) for s, m in matrices if m is not None]
    fig, axes = plt.subplots(1, max(1, len(present)), figsize=(4.6 * max(1, len(present)), 4))
    for ax, (side, matrix) in zip(np.atleast_1d(axes), present, strict=False):
        errors = matrix.copy()
        np.fill_diagonal(errors, 0)
        ax.imshow(errors, cmap="Reds")
        for (i, j), n in np.ndenumerate(errors):
            if n:
                ax.text(j, i, str(n), ha="center", va="center", fontsize=7)
        ax.set_title(f"{side.label}: {int(errors.sum())} errors")
        ax.set_xlabel("predicted")
        ax.set_ylabel("actual")
        ax.set_xticks(range(10))
        ax.set_yticks(range(10))
    fig.tight_layout()
    with atomic_path(path) as tmp, tmp.open("wb") as fh:
        fig.savefig(fh, format="png", dpi=80, metadata={"Software": None})
    plt.close(fig)


def build_report(base: Side, new: Side, out_dir: Path) -> str:
    """Write the images into ``out_dir`` and return the Markdown report.

    Args:
        base: The base side (e.g. ``main``).
        new: The compared side (workspace or a revision).
        out_dir: Where ``report.md`` and its images go.

    Returns:
        The Markdown.
    """
    base_metrics = base.read(METRICS_FILE)
    new_metrics = new.read(METRICS_FILE)
    new_accuracy = json.loads(new_metrics)["test"]["accuracy"] if new_metrics else None
    old_accuracy = json.loads(base_metrics)["test"]["accuracy"] if base_metrics else None
    parts = [
        f"## Model report: {new.label} vs {base.label}",
        "",
        f"Verdict: {verdict(old_accuracy, new_accuracy)}",
        "",
    ]
    sides = [base, new] if base_metrics else [new]
    if base_metrics is None:
        parts += [
            "### No baseline",
            "",
            f"`{base.label}` has no `{METRICS_FILE}` yet (first pull request, or the pipeline "
            "never ran there): nothing to compare. The figures below are this change's alone.",
            "",
        ]
    revs = _revs(base, new)
    metrics = metrics_rows(_dvc_json("metrics", "diff", *revs, "--all"))
    headline = [r for r in metrics if r[0] in HEADLINE or r[0].startswith("val.")]
    other = [r for r in metrics if r not in headline]
    parts += ["### Metrics", "", _table(("metric", base.label, new.label, "change"), headline), ""]
    if other:
        parts += [
            "<details><summary>All metrics</summary>",
            "",
            _table(("metric", base.label, new.label, "change"), other),
            "",
            "</details>",
            "",
        ]
    params = params_rows(_dvc_json("params", "diff", *revs))
    parts += ["### Params", ""]
    parts += [_table(("param", base.label, new.label), params) if params else "No params changed."]
    parts += [""]
    draw_confusions(sides, out_dir / "confusion.png")
    draw_curves(sides, out_dir / "curves.png")
    parts += [
        "### Confusion matrices (errors)",
        "",
        "![confusion matrices](confusion.png)",
        "",
        "### Training curves",
        "",
        "![training curves](curves.png)",
        "",
    ]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> None:
    """``mnist-report --base main [--rev REV] [--out reports/pr]``.

    Args:
        argv: Command-line arguments (defaults to ``sys.argv[1:]``).
    """
    parser = argparse.ArgumentParser(prog="mnist-report", description=__doc__)
    parser.add_argument("--base", required=True, help="git revision to compare against")
    parser.add_argument("--rev", help="compared revision (default: the workspace)")
    parser.add_argument("--out", type=Path, default=Path("reports/pr"))
    args = parser.parse_args(argv)
    probe = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"{args.base}^{{commit}}"],
        capture_output=True, check=False,
    )  # fmt: skip
    if probe.returncode != 0:
        raise PipelineError(f"unknown base revision {args.base!r}; fetch it (git fetch) first")
    base = Side(args.base, args.base)
    new = Side(args.rev or "workspace", args.rev)
    args.out.mkdir(parents=True, exist_ok=True)
    markdown = build_report(base, new, args.out)
    write_text(args.out / "report.md", markdown)
    print(f"wrote {args.out / 'report.md'}")


def entry() -> None:
    """Console-script entry point with one-line errors."""
    run_stage(main, "mnist-report")


if __name__ == "__main__":
    entry()
