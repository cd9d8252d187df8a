"""Render the README's and the docs' generated blocks (``make docs``).

Each block sits between ``<!-- generated: NAME -->`` and ``<!-- /generated: NAME -->`` and is
rebuilt from one source: a report file under ``reports/`` (every measured figure), the Makefile
(its targets), the service's settings model (its environment variables) or the ``mnist`` command
itself (its reference); everything else in the documents is left alone.
``tests/unit/test_docs.py`` fails when the README differs from what the reports say, so a
figure can change only by re-running the command that measures it and then ``make docs``.

Usage: ``python scripts/render_docs.py [--check]`` (``--check``: exit 1 if the README is stale).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mnist_pipeline.markdown import table

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
# Every document with generated blocks (the README and the documentation site's pages); each
# table appears in exactly one of them.
DOCUMENTS = (README, *sorted((ROOT / "docs").rglob("*.md")))


def _load(reports: Path, name: str) -> Any:  # noqa: ANN401 - JSON
    return json.loads((reports / name).read_text(encoding="utf-8"))


def _pct(value: float) -> str:
    return f"{100 * value:.2f}%"


def _seconds(value: float | None) -> str:
    return "not measured" if value is None else f"{value:,.0f} s"


def _command(run: dict[str, Any]) -> str:
    if not run["overrides"]:
        return "`dvc repro`"
    sets = " ".join(f"-S {o}" for o in run["overrides"])
    return f"`dvc exp run -n {run['name']} {sets}`"


def _source(report: dict[str, Any], name: str) -> str:
    machine = report.get("machine", {})
    parts = [f"`reports/{name}`", f"{machine.get('cores', '?')} cores"]
    if "commit" in report:
        parts.append(f"commit {report['commit'][:10]}")
    if "started_at" in report:
        parts.append(report["started_at"])
    return "From " + ", ".join(parts) + "."


RUN_HEADERS = ("run", "command", "test accuracy", "train time")


def results(reports: Path) -> str:
    """The default params and the MLP baseline."""
    report = _load(reports, "experiments.json")
    runs = {r["name"]: r for r in report["runs"]}
    rows = [
        (label, _command(runs[name]), _pct(runs[name]["test_accuracy"]),
         _seconds(runs[name]["train_seconds"]))
        for name, label in (("default", "default (`params.yaml`)"), ("run1b-mlp", "MLP baseline"))
    ]  # fmt: skip
    return "\n".join([table(RUN_HEADERS, rows), "", _source(report, "experiments.json")])


def progression(reports: Path) -> str:
    """Every run of the seed's progression."""
    report = _load(reports, "experiments.json")
    rows = [
        (r["description"], _command(r), _pct(r["test_accuracy"]), _seconds(r["train_seconds"]))
        for r in sorted(report["runs"], key=lambda r: r["description"])
    ]
    return "\n".join([table(RUN_HEADERS, rows), "", _source(report, "experiments.json")])


def serving(reports: Path) -> str:
    """This service against ``mlflow models serve``, same model and machine."""
    report = _load(reports, "bench_serving.json")
    runs = {(r["server"], r["scenario"]): r for r in report["runs"]}
    scenarios = [s for server, s in runs if server == "ours"]

    def cell(r: dict[str, Any] | None) -> str:
        if r is None:
            return "not measured"
        rate = f"{r['requests_per_s']:,.0f} req/s ({r['images_per_s']:,.0f} images/s)"
        return f"{rate}, p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, {r['errors']} errors"

    headers = ("scenario", "this service", "the same, events to Redis", "`mlflow models serve`")
    SERVERS = ("ours", "ours+redis", "mlflow")  # noqa: N806 - the columns, in order
    lines = [table(headers, [
        (scenario, *(cell(runs.get((server, scenario))) for server in SERVERS))
        for scenario in scenarios
    ])]  # fmt: skip
    live = report["health_live"]
    lines += ["", f"`/health/live` of the same service: {live['requests_per_s']:,.0f} req/s; the "
              f"SavedModel in-process, batches of 256: "
              f"{report['in_process_images_per_s_batch256']:,.0f} images/s; "
              f"{report['workers']} workers each. "
              + _source(report, "bench_serving.json")]  # fmt: skip
    return "\n".join(lines)


def variants(reports: Path) -> str:
    """The model's variants served side by side: ratios with their absolute figures."""
    report = _load(reports, "bench_serving.json")
    headers = ("variant", "1 image, c=8", "of its `/health/live`", "batch 256, c=4",
               "of in-process")  # fmt: skip
    rows = [
        (f"`{v['variant']}`",
         f"{v['single_rps']:,.0f} req/s, p50 {v['single_p50_ms']:.1f} ms, "
         f"p99 {v['single_p99_ms']:.1f} ms",
         f"**{v['single_of_floor']:.2f}x** of {v['health_live_rps']:,.0f} req/s",
         f"{v['batch_images_per_s']:,.0f} images/s, p50 {v['batch_p50_ms']:.0f} ms, "
         f"p99 {v['batch_p99_ms']:.0f} ms",
         f"**{v['batch_of_in_process']:.2f}x** of {v['in_process_batch']:,.0f} images/s")
        for v in report["variants"]
    ]  # fmt: skip
    profiles = report["profiles"]
    areas = [
        (area, *(f"{p['areas_us'].get(area, 0):,.0f}" for p in profiles))
        for area in profiles[0]["areas_us"]
    ]
    lines = [
        table(headers, rows),
        "",
        "Where one single-image request's time goes in the app (cProfile, self time, "
        "microseconds per request; the HTTP server's share is what `/health/live` measures):",
        "",
        table(("area", *(f"`{p['variant']}`" for p in profiles)), areas),
        "",
        _source(report, "bench_serving.json"),
    ]
    return "\n".join(lines)


def pipeline(reports: Path) -> str:
    """One cold ``dvc repro`` of the whole graph, and a no-op one."""
    r = _load(reports, "bench_pipeline.json")
    versions = ", ".join(f"{k} {v}" for k, v in r["versions"].items())
    clean = "yes" if r["git_status_clean_after_repro"] else "no"
    rows = [
        ("cold `dvc repro` of the whole graph (fetch included), one process",
         f"{r['cold_repro_seconds']:,.1f} s, peak RSS {r['cold_repro_peak_rss_mib']:,} MiB"),
        (f"of which training (`{r['params']['arch']}`, {r['params']['epochs']} epochs)",
         f"{_seconds(r['train_seconds'])}, {r['train_images_per_second']:,.0f} images/s"),
        ("no-op `dvc repro` (only `register`, always changed, runs)",
         f"{r['noop_repro_seconds']:.1f} s"),
        ("test accuracy", _pct(r["test_accuracy"])),
        ("`git status` clean after the repro", clean),
    ]  # fmt: skip
    return "\n".join([table(("measured", "figure"), rows), "",
                      f"{versions}. " + _source(r, "bench_pipeline.json")])  # fmt: skip


def drift(reports: Path) -> str:
    """Per kind of traffic: drift, true and estimated accuracy, and how often it would page."""
    r = _load(reports, "drift_detection.json")
    headers = (f"traffic ({r['window']} images, {r['samples_per_kind']} seeded windows)",
               "harm", "said drift", "true accuracy", "estimated", "interval covered",
               "page", "ticket", "columns named most")  # fmt: skip
    rows = [
        (kind, "harmful" if v["harmful"] else "benign", f"{100 * v['detection_rate']:.0f}%",
         _pct(v["true_accuracy"]), _pct(v["estimated_accuracy"]),
         f"{100 * v['interval_coverage']:.0f}%", f"{100 * v['page_rate']:.0f}%",
         f"{100 * v['ticket_rate']:.0f}%", ", ".join(v["most_named"][:3]))
        for kind, v in r["results"].items()
    ]  # fmt: skip
    return "\n".join([
        table(headers, rows),
        "",
        f"Harmful: true accuracy below `monitor.min_live_accuracy` ({r['min_live_accuracy']}); the "
        f"reference's estimated accuracy is {_pct(r['reference_estimated_accuracy'])}; page and "
        "ticket are the monitor's grade without labels. From `reports/drift_detection.json`.",
    ])  # fmt: skip


def compression(reports: Path) -> str:
    """The model's variants (SavedModel, TFLite float and int8): size, accuracy, agreement."""
    sizes = _load(reports, "compression.json")["size_bytes"]
    metrics = _load(reports, "metrics.json")
    base = sizes["savedmodel"]
    rows = [("`savedmodel`", f"{base / 1e6:.2f} MB", _pct(metrics["test"]["accuracy"]), "-")]
    rows += [
        (f"`{variant}`",
         f"{sizes[variant] / 1e6:.2f} MB ({base / sizes[variant]:.1f}x smaller)",
         f"{_pct(own['accuracy'])} ({100 * own['accuracy_delta']:+.2f} points)",
         _pct(own["agreement"]))
        for variant, own in ((v, metrics[v]) for v in ("tflite-float", "tflite-int8"))
    ]  # fmt: skip
    headers = ("variant", "size", "test accuracy", "same class as the SavedModel")
    return "\n".join([table(headers, rows), "",
                      "From `reports/compression.json` and `reports/metrics.json`."])  # fmt: skip


def remote(reports: Path) -> str:
    """Fresh clone to first prediction through the remote vs by reproducing; push/pull sizes."""
    report = _load(reports, "bench_remote.json")
    mib = 1024 * 1024

    def steps(way: dict[str, Any]) -> str:
        return "; ".join(f"`{step}` {s:.1f} s" for step, s in way["steps"].items())

    pull, repro, push = report["pull"], report["repro"], report["push"]
    return "\n".join([
        table(("fresh clone to a first prediction", "steps", "total"), [
            ("through the remote", steps(pull), f"**{_seconds(pull['total_s'])}**"),
            ("reproducing (fetch + full training)", steps(repro),
             f"**{_seconds(repro['total_s'])}**"),
        ]),
        "",
        f"`make push` to an empty bucket: {push['objects']} objects, "
        f"{push['bytes'] / mib:.0f} MiB in {push['seconds']:.1f} s; `make pull` brought "
        f"{pull['bytes'] / mib:.0f} MiB. S3 on loopback (moto), so a real bucket's pull is "
        "slower by its bandwidth. " + _source(report, "bench_remote.json"),
    ])  # fmt: skip


def image(reports: Path) -> str:
    """The service images' size, where it goes, their start and their workers' memory."""
    report = _load(reports, "bench_image.json")

    def row(name: str, figures: dict[str, Any]) -> tuple[str, ...]:
        rss = figures["rss_mb"]
        workers = " and ".join(f"{w:.0f}" for w in rss["workers"])
        return (name, f"{figures['image_mb'] / 1000:.2f} GB",
                f"{figures['ready_s']:.1f} s (model baked in)",
                f"master {rss['master']:.0f} MB, workers {workers} MB")  # fmt: skip

    top = ", ".join(f"{p['package']} {p['mb']:.0f} MB" for p in report["largest_packages"][:5])
    biggest = report["layers"][0]
    rows = [row(f"`mnist-api` on `{report['base_image']}`", report)]
    slim = report.get("slim")
    if slim:
        rows.append(row("`mnist-api:slim` (`--target slim`: TFLite int8, LiteRT)", slim))
    lines = [
        table(("image", "size", "ready after `docker run`", "resident memory"), rows),
        "",
        f"The largest layer ({biggest['mb']:.0f} MB) is the virtual environment; its largest "
        f"packages: {top}.",
    ]
    if slim:
        slim_top = ", ".join(
            f"{p['package']} {p['mb']:.0f} MB" for p in slim["largest_packages"][:5]
        )
        lines[-1] += f" The slim image's largest packages: {slim_top}."
    lines[-1] += " " + _source(report, "bench_image.json")
    return "\n".join(lines)


def durability(reports: Path) -> str:
    """Answered predictions missing from the log after SIGKILLs, per log mode."""
    report = _load(reports, "bench_durability.json")
    rows = [
        ("`PREDICTION_LOG_SYNC=true`" if m["prediction_log_sync"] else "default (background)",
         m["workers_killed"], m["answered"], f"**{m['answered_not_logged']}**",
         f"{m['req_per_s']:.0f}")
        for m in report["modes"]
    ]  # fmt: skip
    headers = ("log writer", "workers killed", "answered", "answered, not logged", "req/s")
    return "\n".join([
        table(headers, rows),
        "",
        _source(report, "bench_durability.json"),
    ])  # fmt: skip


def seeds(reports: Path) -> str:
    """Seed noise of the default params: ``make seeds`` (``reports/seeds.json``)."""
    report = _load(reports, "seeds.json")
    values = ", ".join(_pct(v) for v in report["test_accuracy"])
    return (
        f"Seed noise of the default params (`make seeds N={len(report['seeds'])}`): test accuracy "
        f"{values} for seeds {report['seeds'][0]}-{report['seeds'][-1]}; mean "
        f"{_pct(report['mean'])}, standard deviation {100 * report['std']:.3f} points. "
        f"A change inside ±2 std ({200 * report['std']:.2f} points) is indistinguishable from "
        f"a reseed. From `reports/seeds.json`, commit {report['commit'][:10]}."
    )


def _times(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def candidates(reports: Path) -> str:
    """Runs 3-4: the candidates' accuracy, evidence and cost (``reports/candidates.json``)."""
    report = _load(reports, "candidates.json")
    evidence, cost = [], []
    for row in report["candidates"]:
        versus = row.get("versus_default")
        verdict = (
            "-"
            if versus is None
            else (
                f"{versus['verdict']}: {100 * versus['change']:+.2f} points (95% CI "
                f"{100 * versus['interval_95'][0]:+.2f} to {100 * versus['interval_95'][1]:+.2f}), "
                f"p = {versus['mcnemar_p']:.3g}"
            )
        )
        evidence.append((row["name"], f"`{row['command']}`", _pct(row["val_accuracy"]),
                         _pct(row["test_accuracy"]), verdict, _pct(row["robustness_mean"]),
                         _pct(row["robustness_worst"])))  # fmt: skip
        serving, train = row["serving"], row["train"]
        ratios = serving["ratios"]
        cost.append((
            row["name"],
            f"{train['cpu_seconds']:,.0f} s ({_times(train['cpu_ratio'])})",
            f"{serving['size_bytes'] / 1e6:.2f} MB ({_times(ratios['size'])})",
            f"{serving['single_p50_ms']:.2f} ms ({_times(ratios['single_p50'])})",
            f"{serving['single_p99_ms']:.2f} ms ({_times(ratios['single_p99'])})",
            f"{serving['single_per_s']:,.0f} ({_times(ratios['single_per_s'])})",
        ))  # fmt: skip
    check = report["ranking_check"]
    ranking = [
        (r["trial"], r["epochs"], _pct(r["search_value"]), _pct(r["full_val_accuracy"]))
        for r in check["rows"]
    ]
    search, budget = report["search"], report["budget_minutes"]
    return "\n".join(
        [
            table(
                (
                    "candidate",
                    "command",
                    "validation",
                    "test (scored once)",
                    "versus the default (McNemar, paired bootstrap)",
                    "shifted: mean",
                    "shifted: worst",
                ),
                evidence,
            ),
            "",
            table(
                (
                    "candidate",
                    "training CPU time",
                    "model size",
                    "single image p50",
                    "single image p99",
                    "predictions/s, one caller",
                ),
                cost,
            ),
            "",
            f"Chosen on validation accuracy: **{report['chosen_on_validation']['name']}**: "
            f"{report['chosen_on_validation']['reason']}.",
            "",
            f"The search (`{search['study']}`): {search['trials']} trials ({search['complete']} "
            f"complete, {search['pruned']} pruned) with "
            f"{', '.join(f'`{k}={v}`' for k, v in search['fixed'].items())}, "
            f"{search['seconds'] / 60:.0f} min. Its ranking against the same configurations "
            "trained again on every image:",
            "",
            table(
                ("trial", "epochs", "search (validation, subset)", "every image (validation)"),
                ranking,
            ),
            "",
            f"Kendall's tau {check['kendall_tau']:+.2f} (p = {check['p_value']:.2g}); the search's "
            f"best is {'also' if check['same_best'] else 'not'} the best at full size.",
            "",
            "Budget, training wall time on this machine: the search "
            f"{budget['search']} min, the ranking check {budget['ranking_check']} min, the "
            f"candidates {budget['candidates']} min.",
            "",
            _source(report, "candidates.json"),
        ]
    )


def repro_line(reports: Path) -> str:
    """The line ``make repro`` prints last, from ``reports/metrics.json``."""
    t = _load(reports, "metrics.json")["test"]
    return (
        "```\n"
        f"test accuracy {t['accuracy']:.4f}  loss {t['loss']:.4f}  macro F1 {t['f1_macro']:.4f}  "
        f"errors {t['errors']}/{t['count']}\n"
        "```"
    )


def tests(reports: Path) -> str:
    """The test suite's budget: CI cold and warm, ``make test-fast``, the tiers, the slowest."""
    if not (reports / "bench_tests.json").is_file():
        return "Not measured yet: run `make bench-tests`, then `make docs`."
    report = _load(reports, "bench_tests.json")

    carried = set(report.get("carried_over", []))
    earlier = " (an earlier commit's: not measured again)"

    def minutes(key: str) -> str:
        value = report.get(key)
        if value is None:
            return "not measured"
        return _minutes(value) + (earlier if key in carried else "")

    # The warm run may have measured a later commit (the same clone, pulled): say which.
    warm = report.get("warm_commit")
    warm_note = f" (commit {warm[:10]}, the same clone pulled to it)" if warm else ""
    rows = [
        ("`CI=true bash .ci/run`, cold (fresh clone, no venv, caches or images)",
         minutes("ci_seconds")),
        (f"the same again, warm{warm_note}", minutes("ci_seconds_warm")),
        ("`make test-fast`", minutes("test_fast_seconds")),
    ]  # fmt: skip
    install = report.get("install_seconds")
    if install:
        rows.append(
            (
                "`requirements.lock` into a new venv, empty caches: pip / uv (`make setup`)",
                f"{install['pip']:,.0f} s / {install['uv']:,.0f} s"
                + (earlier if "install_seconds" in carried else ""),
            )
        )
    lines = [table(("what", "wall time"), rows)]
    slowest = report.get("slowest", [])[:5]
    if slowest:
        lines += [
            "",
            "Slowest tests: "
            + "; ".join(
                f"`{row['test'].split('::')[-1].split('@')[0]}` {row['seconds']:.0f} s"
                for row in slowest
            )
            + ".",
        ]
    return "\n".join([*lines, "", _source(report, "bench_tests.json")])


def requirements(reports: Path) -> str:
    """What a first run costs: install, the cold pipeline, the suite, disk (measured)."""
    suite = _load(reports, "bench_tests.json")
    pipeline_report = _load(reports, "bench_pipeline.json")
    disk = _load(reports, "disk.json")
    carried = "install_seconds" in suite.get("carried_over", [])
    install_note = " (an earlier commit's)" if carried else ""
    rows = [
        ["install `requirements.lock` into `.venv` (`make setup`, uv, empty caches)",
         _minutes(suite["install_seconds"]["uv"]) + install_note],
        ["first `make repro` (cold: fetch, train, evaluate, register)",
         _minutes(pipeline_report["cold_repro_seconds"])],
        ["`make test` as CI runs it (`.ci/run`, cold)", _minutes(suite["ci_seconds"])],
        ["disk: `.venv`", f"{disk['venv_gb']:.1f} GB"],
        ["disk: data, models and the DVC cache after `make repro`",
         f"{disk['dvc_gb']:.1f} GB"],
    ]  # fmt: skip
    sources = (f"From `reports/bench_tests.json` (commit {suite['commit']}), "
               f"`reports/bench_pipeline.json` (commit {pipeline_report['commit'][:10]}) and "
               f"`reports/disk.json` (commit {disk['commit'][:10]}), "
               f"{suite['machine']['cores']} cores.")  # fmt: skip
    return "\n".join([table(["what", "measured"], rows), "", sources])


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min ({seconds:,.0f} s)" if seconds >= 60 else f"{seconds:.0f} s"


def stack(reports: Path) -> str:
    """``make stack`` from a fresh clone to the first prediction, per compose (make bench-stack)."""
    report = _load(reports, "stack.json")
    rows = [
        [f"`{run['compose']}` ({run['compose_version']})", "cold" if run["cold"] else "warm",
         _minutes(run["make_stack_s"]), _minutes(run["first_prediction_s"]),
         _minutes(run["test_s"])]
        for run in report["runs"]
    ]  # fmt: skip
    header = ["compose", "images", "`make stack`", "to the first prediction", "the stack test"]
    note = (
        f"Tiny training params (the test's); Docker {report['docker']}. From "
        f"`reports/stack.json`, {report['machine']['cores']} cores, commit "
        f"{report['commit'][:10]}."
    )
    return "\n".join([table(header, rows), "", note])


def make_targets(reports: Path) -> str:
    """The Makefile's targets and their ``##`` descriptions (``make help``)."""
    rows = []
    for line in (ROOT / "Makefile").read_text(encoding="utf-8").splitlines():
        found = re.match(r"^([a-z][a-z-]*):[^=]*?## (.+)$", line)
        if found:
            rows.append([f"`make {found.group(1)}`", found.group(2).replace("|", "\\|")])
    return table(["target", "does"], rows)


def settings(reports: Path) -> str:
    """The service's environment variables, from its settings model (``app/settings.py``)."""
    sys.path.insert(0, str(ROOT))
    from app.settings import Settings

    # A field without a description: the comment on its line in .env.example, if any.
    commented = {
        found.group(1): found.group(2)
        for found in re.finditer(r"^# ?([A-Z_]+)=[^\s#]*[ \t]+# (.+)$",
                                 (ROOT / ".env.example").read_text(encoding="utf-8"), re.M)
    }  # fmt: skip
    rows = []
    for name, field in Settings.model_fields.items():
        default = field.default
        shown = "unset" if default is None else f"`{default}`"
        what = field.description or commented.get(name.upper(), "")
        rows.append([f"`{name.upper()}`", shown, what.replace("|", "\\|")])
    return table(["variable", "default", "what"], rows)


def cli(reports: Path) -> str:
    """The ``mnist`` command's reference, from the command itself (its Typer app)."""
    import typer

    from mnist_pipeline.commands import app

    root = typer.main.get_command(app)
    # Typer carries its own click: its Context class, from a context of the root command.
    context_class = type(root.make_context("mnist", ["--help"], resilient_parsing=True))
    parts: list[str] = []

    def walk(command: Any, path: list[str]) -> None:  # noqa: ANN401 - Typer's own click
        context = context_class(command, info_name=" ".join(path))
        if hasattr(command, "list_commands"):  # a group: its sub-commands, in order
            for name in command.list_commands(context):
                sub = command.get_command(context, name)
                if sub is not None and not sub.hidden:
                    walk(sub, [*path, name])
            return
        usage = " ".join(command.collect_usage_pieces(context))
        help_text = " ".join((command.help or "").split("\n\n")[0].split())
        parts.append(f"### `{' '.join(path)}`\n\n{help_text}\n\n```\n{' '.join(path)} {usage}\n```")
        rows = [
            [", ".join(f"`{o}`" for o in param.opts), " ".join((param.help or "").split())]
            for param in command.params
            if param.param_type_name == "option" and not getattr(param, "hidden", False)
        ]
        if rows:
            parts.append(table(["option", "what"], [[o, w.replace("|", "\\|")] for o, w in rows]))

    walk(root, ["mnist"])
    return "\n\n".join(parts)


def distributed(reports: Path) -> str:
    """One worker vs two on loopback (``make bench-distributed``)."""
    report = _load(reports, "bench_distributed.json")
    rows = [
        [label, f"{run['last_epoch_ms_per_step']:.1f} ms", f"{run['last_epoch_images_per_s']:,.0f}",
         f"{run['wall_s']:.1f} s", _pct(run["test_accuracy"])]
        for label, run in (("1 worker (`model.fit`)", report["one_worker"]),
                           ("2 workers on loopback", report["2_workers"]))
    ]  # fmt: skip
    header = ["", "time per step (last epoch)", "images/s", "wall time", "test accuracy"]
    return "\n".join([table(header, rows), "", _source(report, "bench_distributed.json")])


def scoring(reports: Path) -> str:
    """Batch scoring, the local engine vs Spark (``make bench-score``)."""
    report = _load(reports, "bench_score.json")
    rows = [
        [label, f"{run['first_call_s_1000_images']:.2f} s",
         f"{run['wall_s']:.2f} s, {run['images_per_s']:,.0f} images/s",
         f"{report['identical_classes']} identical" if label == "local" else ""]
        for label, run in (("local", report["local"]),
                           (f"Spark `{report['spark_master']}`", report["spark"]))
    ]  # fmt: skip
    n, batch = report["images"], report["batch"]
    header = ["engine", f"first {batch:,} images (start-up included)",
              f"{n:,} images after it", "classes"]  # fmt: skip
    return "\n".join([table(header, rows), "", _source(report, "bench_score.json")])


TABLES: dict[str, Callable[[Path], str]] = {
    "repro_line": repro_line,
    "results": results,
    "progression": progression,
    "serving": serving,
    "variants": variants,
    "pipeline": pipeline,
    "drift": drift,
    "compression": compression,
    "remote": remote,
    "image": image,
    "durability": durability,
    "seeds": seeds,
    "candidates": candidates,
    "tests": tests,
    "requirements": requirements,
    "stack": stack,
    "make_targets": make_targets,
    "settings": settings,
    "cli": cli,
    "distributed": distributed,
    "scoring": scoring,
}
_BLOCK = re.compile(r"(<!-- generated: (\w+) -->\n)(.*?)(<!-- /generated: \2 -->)", re.S)


def render(text: str, reports: Path = ROOT / "reports") -> str:
    """``text`` with every generated block rebuilt from ``reports``.

    Raises:
        KeyError: If a block names a table this script does not know.
    """

    def replace(match: re.Match[str]) -> str:
        body = TABLES[match.group(2)](reports)
        return f"{match.group(1)}{body}\n{match.group(4)}"

    return _BLOCK.sub(replace, text)


def blocks(text: str) -> list[str]:
    """The names of the generated blocks in ``text``, in order."""
    return [m.group(2) for m in _BLOCK.finditer(text)]


def main(argv: list[str]) -> int:
    """Rewrite the documents (or, with ``--check``, say whether they are current)."""
    stale = []
    for document in DOCUMENTS:
        current = document.read_text(encoding="utf-8")
        rendered = render(current)
        if rendered != current:
            stale.append(document.relative_to(ROOT))
            if "--check" not in argv:
                document.write_text(rendered, encoding="utf-8")
    if stale and "--check" in argv:
        names = ", ".join(map(str, stale))
        print(f"{names} differ from reports/: run `make docs`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
