"""``mnist report``: what a change did to the model, as Markdown for a pull request.

Compares the workspace (or ``--rev``: a branch, a commit, or a DVC experiment by name or ref)
with ``--base``: a verdict from McNemar's exact test on the per-image predictions (with a paired
bootstrap interval, recall per digit, calibration and the flip galleries; see
:mod:`report_verdict`), the serving cost of both models (:mod:`report_cost`), ``dvc metrics
diff`` and ``dvc params diff`` tables, and both sides' confusion matrices and training curves as
PNG images rendered here (no web service). A base without metrics or predictions (the first pull
request) gets its own section, not a crash.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib as mpl

mpl.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from mnist_contracts import paths
from mnist_pipeline import markdown
from mnist_pipeline.atomic import write_text
from mnist_pipeline.errors import PipelineError
from mnist_pipeline.figures import save_png
from mnist_pipeline.ops import report_cost, report_verdict
from mnist_pipeline.ops.report_verdict import Predictions
from mnist_pipeline.ops.tools import tool
from mnist_pipeline.params import load_params
from mnist_pipeline.progress import Steps

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
        data = self.read_bytes(path)
        return data.decode("utf-8") if data is not None else None

    def read_bytes(self, path: str) -> bytes | None:
        """The file's bytes at this revision, or None when it does not exist there."""
        if self.rev is None:
            file = Path(path)
            return file.read_bytes() if file.is_file() else None
        result = subprocess.run(
            [tool("git"), "show", f"{self.rev}:{path}"], capture_output=True, check=False
        )
        return result.stdout if result.returncode == 0 else None


def resolve_rev(name: str) -> str | None:
    """A git revision for ``name``: a branch, tag or commit, or a DVC experiment's name or ref.

    Experiments (``dvc exp run``, queued or ``--temp``) live under ``refs/exps/``, which git's
    revision syntax does not search; the experiment's ref is found by its name there (the newest
    one, when experiments on several baselines share the name).

    Returns:
        Something ``git show REV:path`` accepts, or None when nothing matches.
    """
    probe = subprocess.run(
        [tool("git"), "rev-parse", "--verify", "--quiet", f"{name}^{{commit}}"],
        capture_output=True, check=False,
    )  # fmt: skip
    if probe.returncode == 0:
        return name
    refs = subprocess.run(
        [tool("git"), "for-each-ref", "--sort=-committerdate", "--format=%(refname)", "refs/exps/"],
        capture_output=True, text=True, check=False,
    ).stdout.split()  # fmt: skip
    matches = [ref for ref in refs if ref.rsplit("/", 1)[-1] == name]
    return matches[0] if matches else None


def _dvc_json(*args: str) -> dict[str, Any]:
    result = subprocess.run(
        [tool("dvc"), *args, "--json"], capture_output=True, text=True, check=False
    )
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
    return markdown.table(header, [[_fmt(v) for v in row] for row in rows])


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
    save_png(fig, path, dpi=80)


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
    fig, axes = plt.subplots(1, max(1, len(present)), figsize=(6 * max(1, len(present)), 5.4))
    off_diagonal = []
    for _, matrix in present:
        errors = matrix.copy()
        np.fill_diagonal(errors, 0)
        off_diagonal.append(errors)
    # One colour scale for both sides, so the same shade means the same count.
    top = max([1, *(int(e.max()) for e in off_diagonal)])
    for ax, (side, _), errors in zip(np.atleast_1d(axes), present, off_diagonal, strict=False):
        ax.imshow(errors, cmap="Reds", vmin=0, vmax=top)
        dark = 0.6 * top
        for (i, j), n in np.ndenumerate(errors):
            if n:
                color = "white" if n >= dark else "black"  # readable on the darkest cells too
                ax.text(j, i, str(n), ha="center", va="center", fontsize=10, color=color)
        ax.set_title(f"{side.label}: {int(errors.sum())} errors")
        ax.set_xlabel("predicted")
        ax.set_ylabel("actual")
        ax.set_xticks(range(10))
        ax.set_yticks(range(10))
    save_png(fig, path, dpi=100)


def decision_sections(base: Side, new: Side, out_dir: Path) -> tuple[str | None, list[str]]:
    """The verdict line (None without both sides' predictions) and the statistics sections."""
    base_record = Predictions.parse(base.read(report_verdict.PREDICTIONS_FILE))
    new_record = Predictions.parse(new.read(report_verdict.PREDICTIONS_FILE))
    if new_record is None:
        return None, []
    if base_record is None:
        return None, [
            "### No per-image predictions at the base",
            "",
            f"`{base.label}` has no `{report_verdict.PREDICTIONS_FILE}`: the change cannot be "
            "tested image by image (the base predates per-image records, or never ran the "
            "pipeline). The metrics below are the only comparison.",
            "",
        ]
    if not np.array_equal(base_record.labels, new_record.labels):
        return None, [
            "### Different test sets",
            "",
            f"The two sides scored different test images ({len(base_record.labels)} vs "
            f"{len(new_record.labels)}, or another order): no paired test is possible.",
            "",
        ]
    params = load_params(Path(paths.PARAMS_FILE)).report
    decision = report_verdict.decide(base_record, new_record, params.alpha)
    parts = [
        "### Is it really better?",
        "",
        "The verdict above pairs the two models image by image on the same test set: the "
        "interval is a paired bootstrap of the accuracy change, and McNemar's exact test asks "
        "whether the images whose answer changed lean one way, at the level `report.alpha`.",
        "",
        "#### Recall per digit",
        "",
        report_verdict.recall_table(base_record, new_record),
        "",
    ]
    suffix, noise = noise_section(base, new, decision.change)
    parts += noise
    parts += calibration_section(base, new, out_dir)
    parts += flip_section(base_record, new_record, params.flips, out_dir)
    return decision.line() + suffix, parts


def noise_section(base: Side, new: Side, change: float) -> tuple[str, list[str]]:
    """How much accuracy moves without a real change: the seed spread and the CV spread.

    Args:
        base: The base side.
        new: The compared side.
        change: The accuracy change (a fraction) the verdict reports.

    Returns:
        A suffix for the verdict line (empty without a seed spread) and the section's lines.
    """
    suffix, parts = "", []
    spread = seed_spread(new) or seed_spread(base)
    if spread is not None:
        std, n, commit = spread
        inside = abs(change) <= 2 * std
        suffix = (
            f"; {'inside' if inside else 'outside'} the seed noise "
            f"(±2 std = ±{200 * std:.2f} points over {n} seeds)"
        )
        parts += [
            "#### Seed noise",
            "",
            f"`make seeds` at commit {commit[:10]}: test accuracy varies with the seed alone by "
            f"a standard deviation of {100 * std:.2f} points over {n} seeds; this change "
            f"({100 * change:+.2f}) is {'inside' if inside else 'outside'} ±2 std.",
            "",
        ]
    rows = []
    for side in (base, new):
        found = cv_spread(side)
        if found is not None:
            mean, std, k = found
            rows.append((side.label, k, f"{100 * mean:.2f}%", f"{100 * std:.2f}"))
    if rows:
        parts += [
            "#### Cross-validation",
            "",
            "Held-out accuracy over `train.cv_folds` stratified folds of the training images (the "
            "validation and test images stay out), beside the seed spread above: a spread of the "
            "data where the seeds give a spread of the initialisation.",
            "",
            markdown.table(("side", "folds", "mean", "std (points)"), rows),
            "",
        ]
    return suffix, parts


def cv_spread(side: Side) -> tuple[float, float, int] | None:
    """``(mean, std, folds)`` from the side's ``reports/train/metrics.json`` (train.cv_folds)."""
    text = side.read(str(paths.TRAIN_METRICS))
    if text is None:
        return None
    try:
        cv = json.loads(text)["cv"]
        return float(cv["mean"]), float(cv["std"]), len(cv["fold_accuracy"])
    except (ValueError, KeyError, TypeError):
        return None


def seed_spread(side: Side) -> tuple[float, int, str] | None:
    """``(std, seeds, commit)`` from the side's ``reports/seeds.json`` (``make seeds``)."""
    from mnist_pipeline.ops.seeds import SEEDS_FILE

    text = side.read(str(SEEDS_FILE))
    if text is None:
        return None
    try:
        report = json.loads(text)
        return float(report["std"]), len(report["seeds"]), str(report["commit"])
    except (ValueError, KeyError, TypeError):
        return None


def calibration_section(base: Side, new: Side, out_dir: Path) -> list[str]:
    """Both sides' expected calibration error and reliability diagrams."""

    def ece(side: Side) -> str:
        text = side.read(METRICS_FILE)
        value = json.loads(text)["test"].get("ece") if text else None
        return f"{value:.4f}" if isinstance(value, float) else "n/a"

    parts = [
        "#### Calibration",
        "",
        f"Expected calibration error (15 bins): {base.label} {ece(base)}, {new.label} "
        f"{ece(new)} (0 is perfect: a confidence of 0.9 is right nine times in ten).",
        "",
    ]
    for side, name in ((base, "reliability-base.png"), (new, "reliability-new.png")):
        image = side.read_bytes(str(paths.RELIABILITY_FILE))
        if image is not None:
            (out_dir / name).write_bytes(image)
            parts += [f"![reliability, {side.label}]({name})", ""]
    return parts


def robustness_section(base: Side, new: Side) -> list[str]:
    """Both sides' test accuracy under each shift of :mod:`mnist_pipeline.robustness`.

    Returns:
        The section's lines; none when neither side has ``reports/robustness.json``.
    """
    from mnist_pipeline.robustness import descriptions

    def shifted(side: Side) -> dict[str, Any]:
        text = side.read(str(paths.ROBUSTNESS_FILE))
        try:
            found = json.loads(text)["robustness"] if text else {}
        except (ValueError, KeyError, TypeError):
            found = {}
        return found if isinstance(found, dict) else {}

    old, now = shifted(base), shifted(new)
    if not old and not now:
        return []

    def accuracy(side: dict[str, Any], name: str) -> float | None:
        value = side.get(name, {}).get("accuracy")
        return float(value) if isinstance(value, int | float) else None

    rows = []
    for name, what in descriptions().items():
        a, b = accuracy(old, name), accuracy(now, name)
        change = f"{100 * (b - a):+.2f}" if a is not None and b is not None else "-"
        rows.append((name, what, *(f"{100 * v:.2f}%" if v is not None else "n/a" for v in (a, b)),
                     change))  # fmt: skip
    return [
        "#### Robustness",
        "",
        f"Test accuracy under the shifts real digits have, on the same shifted images for both "
        f"sides (`{paths.ROBUSTNESS_FILE}`); change in points.",
        "",
        _table(("shift", "what", base.label, new.label, "change"), rows),
        "",
    ]


def flip_section(base: Predictions, new: Predictions, cap: int, out_dir: Path) -> list[str]:
    """The flip galleries: test images newly wrong and newly right."""
    from mnist_pipeline.dataset import load_split

    wrong, right = report_verdict.flip_indices(base, new, cap)
    parts = [
        "#### Flips",
        "",
        f"{int(np.sum(base.correct & ~new.correct))} images newly wrong, "
        f"{int(np.sum(~base.correct & new.correct))} newly right (galleries show at most {cap} "
        "each, with the true digit and both answers).",
        "",
    ]
    try:
        test = load_split("test", Path(paths.PREPARED_DIR))
    except (OSError, PipelineError, KeyError, ValueError):
        return [*parts, "(No `data/prepared/test.npz` here to draw them: run `dvc repro`.)", ""]
    if not np.array_equal(test.y.astype(np.int64), new.labels):
        return [*parts, "(The workspace's test images are not the compared ones.)", ""]
    for which, name, title in (
        (wrong, "flips-newly-wrong.png", "Newly wrong: the base was right"),
        (right, "flips-newly-right.png", "Newly right: the base was wrong"),
    ):
        report_verdict.draw_flips(test.x, base, new, which, title, out_dir / name)
        parts += [f"![{title.lower()}]({name})", ""]
    return parts


def cost_sections(base: Side, new: Side, out_dir: Path) -> list[str]:
    """Both sides' serving cost as ratios, or why it is unavailable."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="mnist-report-") as tmp:
        new_dir, new_why = report_cost.fetch_model(new.rev, Path(tmp) / "new")
        base_dir, base_why = report_cost.fetch_model(base.rev, Path(tmp) / "base")
        if new_dir is None:
            return ["### Cost", "", report_cost.cost_section(None, None, new_why), ""]
        models = [new_dir] + ([base_dir] if base_dir is not None else [])
        costs = report_cost.measure(models)
    new_cost = costs[0]
    base_cost = costs[1] if base_dir is not None else None
    return ["### Cost", "", report_cost.cost_section(base_cost, new_cost, base_why), ""]


def build_report(base: Side, new: Side, out_dir: Path, *, cost: bool = True) -> str:
    """Write the images into ``out_dir`` and return the Markdown report.

    Args:
        base: The base side (e.g. ``main``).
        new: The compared side (workspace, a revision or an experiment's ref).
        out_dir: Where ``report.md`` and its images go.
        cost: Measure both models' serving cost (loads TensorFlow).

    Returns:
        The Markdown.
    """
    with Steps("mnist report", 5) as step:
        return _build(base, new, out_dir, cost, step)


def _build(base: Side, new: Side, out_dir: Path, cost: bool, step: Steps) -> str:
    step("statistics")
    base_metrics = base.read(METRICS_FILE)
    new_metrics = new.read(METRICS_FILE)
    new_accuracy = json.loads(new_metrics)["test"]["accuracy"] if new_metrics else None
    old_accuracy = json.loads(base_metrics)["test"]["accuracy"] if base_metrics else None
    line, decision = decision_sections(base, new, out_dir)
    parts = [
        f"## Model report: {new.label} vs {base.label}",
        "",
        f"Verdict: {line or verdict(old_accuracy, new_accuracy)}",
        "",
        *decision,
        *robustness_section(base, new),
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
    step("serving cost")
    if cost and new_metrics is not None:
        parts += cost_sections(base, new, out_dir)
    step("metrics")
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
    step("params")
    params = params_rows(_dvc_json("params", "diff", *revs))
    parts += ["### Params", ""]
    parts += [_table(("param", base.label, new.label), params) if params else "No params changed."]
    parts += [""]
    step("plots")
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
        f"<sub>mnist report at commit {_head()} on {os.cpu_count()} CPU cores.</sub>",
        "",
    ]
    return "\n".join(parts)


def _head() -> str:
    result = subprocess.run(
        [tool("git"), "rev-parse", "--short=10", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() or "unknown"


def write_report(base_name: str, rev: str | None, out: Path, cost: bool) -> Path:
    """Compare ``rev`` (default: the workspace) with ``base_name`` and write ``out/report.md``.

    Args:
        base_name: The git revision to compare against.
        rev: The compared revision or experiment, or None for the workspace.
        out: The report's directory.
        cost: Whether to measure both models' serving cost.

    Returns:
        The report's path.

    Raises:
        PipelineError: A revision is unknown.
    """
    base_rev = resolve_rev(base_name)
    if base_rev is None:
        raise PipelineError(f"unknown base revision {base_name!r}; fetch it (git fetch) first")
    new_rev = None
    if rev is not None:
        new_rev = resolve_rev(rev)
        if new_rev is None:
            raise PipelineError(
                f"unknown revision or experiment {rev!r}; see `git branch -a` and `dvc exp list`"
            )
    base = Side(base_name, base_rev)
    new = Side(rev or "workspace", new_rev)
    out.mkdir(parents=True, exist_ok=True)
    markdown = build_report(base, new, out, cost=cost)
    write_text(out / "report.md", markdown)
    return out / "report.md"
