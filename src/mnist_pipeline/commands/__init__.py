"""``mnist``: one command for everything this project does, beside ``dvc`` and ``mlflow``.

Every sub-command reads ``.env`` (the environment wins) before any setting, answers ``--help``
without importing TensorFlow or MLflow (each imports what it runs when it runs), and exits with
the codes of :mod:`mnist_pipeline.commands._base`. ``python -m mnist_pipeline.commands`` is the
same command where the package is not installed (the images).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from mnist_contracts import paths
from mnist_contracts.env_file import load_env
from mnist_pipeline.commands import registry, remote
from mnist_pipeline.commands._base import ERROR, INTERRUPTED, emit, fail, one_line_errors
from mnist_pipeline.commands.events import (
    EVENTS_DEFAULT,
    PREFIX_DEFAULT,
    EventsOption,
    PrefixOption,
)

STAGES = tuple(paths.STAGES)

app = typer.Typer(
    name="mnist",
    help="Reproducible MNIST: the pipeline's stages, the registry, reports, monitoring, serving "
    "tools. Settings come from the environment and .env.",
    epilog="Example: mnist registry list   (mnist COMMAND --help for each; exit codes: 0 done, "
    "1 a negative verdict, 2 an error, 3 too little data)",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(registry.app, name="registry")
app.add_typer(remote.app, name="remote")
JsonOption = Annotated[bool, typer.Option("--json", help="print JSON")]


@app.command(epilog="Example: mnist stage train   (what `dvc repro` runs for that stage)")
def stage(name: Annotated[str, typer.Argument(help=f"one of {', '.join(STAGES)}")]) -> None:
    """Run one pipeline stage as dvc.yaml does (PYTHONPATH=src python -m ...stages.NAME).

    Prefer `dvc repro` (it skips what has not changed); this runs the stage unconditionally.
    """
    if name not in STAGES:
        fail("stage", f"unknown stage {name!r}: choose one of {', '.join(STAGES)}")
    env = dict(os.environ)
    if Path("src/mnist_pipeline").is_dir():  # the repository's code, as dvc.yaml runs it
        env["PYTHONPATH"] = os.pathsep.join(filter(None, ["src", env.get("PYTHONPATH")]))
    code = subprocess.run(
        [sys.executable, "-m", f"mnist_pipeline.stages.{name}"], env=env, check=False
    ).returncode
    if code:
        raise typer.Exit(INTERRUPTED if code == INTERRUPTED else ERROR)


@app.command(epilog="Example: mnist report --base main --rev my-experiment --no-cost")
def report(
    base: Annotated[str, typer.Option("--base", help="the git revision to compare against")],
    rev: Annotated[
        str | None,
        typer.Option("--rev", help="the compared revision or experiment", show_default="workspace"),
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="the report's directory")] = Path("reports/pr"),
    no_cost: Annotated[bool, typer.Option("--no-cost", help="skip measuring serving cost")] = False,
    as_json: JsonOption = False,
) -> None:
    """The pull-request report: the workspace (or --rev) against --base, always exit 0.

    The verdict (McNemar, a bootstrap interval, flips, seed noise, cost) is in the report.
    """
    with one_line_errors("report"):
        from mnist_pipeline.ops.report import write_report

        written = write_report(base, rev, out, cost=not no_cost)
    emit(as_json, {"report": str(written)}, f"wrote {written}")


@app.command(epilog="Example: mnist monitor --events redis://localhost:6379/0 --every 300")
def monitor(
    events: EventsOption = EVENTS_DEFAULT,
    events_prefix: PrefixOption = PREFIX_DEFAULT,
    reference: Annotated[Path, typer.Option(help="the reference stage's output")] = Path(
        paths.REFERENCE_DIR
    ),
    out: Annotated[Path, typer.Option(help="where the reports go")] = Path(paths.DRIFT_DIR),
    window: Annotated[
        int | None, typer.Option(help="the latest N predictions", show_default="monitor.window")
    ] = None,
    model_version: Annotated[
        str | None, typer.Option(help="the model's digest", show_default="the reference's")
    ] = None,
    params: Annotated[Path, typer.Option(help="the params file")] = Path(paths.PARAMS_FILE),
    every: Annotated[
        float | None, typer.Option(help="run every SECONDS, never exiting", show_default="once")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Have live digits drifted from the reference, and is the model still right?

    Exit 0 no drift, 1 drift, 2 error, 3 too few predictions.
    """
    from mnist_pipeline.ops.monitor import CheckOptions, run_once

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    options = CheckOptions(events, events_prefix, reference, out, window, model_version, params,
                           as_json)  # fmt: skip
    if every is None:
        raise typer.Exit(run_once(options))
    if every <= 0:
        fail("monitor", "--every must be a positive number of seconds")
    while True:
        code = run_once(options)
        print(f"mnist monitor: exit status {code}; next run in {every:g} s", flush=True)
        time.sleep(every)


@app.command(epilog="Example: mnist shadow --events redis://localhost:6379/0")
def shadow(
    events: Annotated[
        str | None, typer.Option(envvar="EVENTS_URL", help="the event stream's redis:// URL")
    ] = None,
    events_prefix: PrefixOption = PREFIX_DEFAULT,
    candidate: Annotated[
        str, typer.Option(envvar="SHADOW_MODEL_URI", help="model URI or exported directory")
    ] = "models:/mnist-classifier@candidate",
    once: Annotated[bool, typer.Option(help="stop when the stream is drained")] = False,
) -> None:
    """Run the candidate model on live inputs beside production, unseen by users."""
    if (Path.cwd() / "app" / "shadow_consumer.py").is_file() and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))  # the repository's service code (the image has it)
    try:
        from app import logs
        from app.shadow_consumer import ShadowError, run_consumer
    except ModuleNotFoundError:
        fail("shadow", "the service's code (app/) is not importable: run it from the repository "
             "root or in the service image")  # fmt: skip
    logs.configure(os.environ.get("LOG_LEVEL", "INFO"))
    try:
        run_consumer(events, events_prefix, candidate, once)
    except ShadowError as err:
        fail("shadow", str(err))


@app.command(epilog="Example: mnist collect && git add data/feedback && git commit")
def collect(
    events: EventsOption = EVENTS_DEFAULT,
    events_prefix: PrefixOption = PREFIX_DEFAULT,
    out: Annotated[Path, typer.Option(help="the feedback file")] = Path(paths.FEEDBACK_FILE),
    no_dvc: Annotated[bool, typer.Option("--no-dvc", help="write the file only")] = False,
    as_json: JsonOption = False,
) -> None:
    """Labelled live events into the DVC-tracked training data (data/feedback)."""
    with one_line_errors("collect"):
        from mnist_pipeline.ops.collect import collect as gather
        from mnist_pipeline.ops.collect import dvc_add

        added, total, skipped = gather(events, events_prefix, out)
        if added and not no_dvc:
            dvc_add(out)
    note = f"; {skipped} labelled events carried no image" if skipped else ""
    track = f"; commit {out}.dvc" if added and not no_dvc else ""
    data = {"added": added, "total": total, "skipped": skipped, "file": str(out)}
    emit(
        as_json, data, f"mnist collect: {added} new labelled events, {total} in {out}{note}{track}"
    )


@app.command(epilog="Example: mnist score images/ --out scored/ --engine spark")
def score(
    source: Annotated[Path, typer.Argument(help="a directory of images, an .npz or a .parquet")],
    out: Annotated[Path, typer.Option(help="the Parquet dataset (a directory)")],
    model: Annotated[
        str, typer.Option(help="a registered model URI or an exported SavedModel directory")
    ] = "models:/mnist-classifier@production",
    batch: Annotated[int, typer.Option(min=1, help="images per model call and part")] = 1024,
    engine: Annotated[
        str, typer.Option(help="local: this process; spark: spark_udf on SPARK_MASTER")
    ] = "local",
    as_json: JsonOption = False,
) -> None:
    """Score a batch of images with the registered (or an exported) model, resumably."""
    if engine not in ("local", "spark"):
        fail("score", f"--engine {engine!r}: choose local or spark")
    with one_line_errors("score"):
        from mnist_pipeline.ops.score import score as run_score

        counts = run_score(source, out, model, batch, engine)
    emit(as_json, {**counts, "out": str(out)},
         f"scored {counts['scored']}, failed {counts['failed']} (see the error column), "
         f"skipped {counts['skipped']} already in {out}")  # fmt: skip


@app.command(epilog="Example: mnist seeds --n 5   (then mnist report shows the spread)")
def seeds(
    n: Annotated[int, typer.Option("--n", help="how many seeds (1..N)")] = 5,
    as_json: JsonOption = False,
) -> None:
    """How much test accuracy moves with the seed alone: N queued experiments.

    The spread goes to reports/seeds.json, and `mnist report` says when a change lies inside it.
    """
    with one_line_errors("seeds"):
        from mnist_pipeline.ops.seeds import SEEDS_FILE, run_seeds

        found = run_seeds(n)
    spread = f"range {found['min']:.4f}-{found['max']:.4f}"
    emit(as_json, found,
         f"test accuracy over {len(found['seeds'])} seeds: mean {found['mean']:.4f}, "
         f"std {found['std']:.4f}, {spread}; {SEEDS_FILE}")  # fmt: skip


@app.command(epilog="Example: mnist tune --trials 3   (then, deliberately, the printed apply)")
def tune(
    config: Annotated[Path, typer.Option(help="the study's search space and budget")] = Path(
        "tune.yaml"
    ),
    trials: Annotated[int | None, typer.Option(min=1, help="trials (overrides the file)")] = None,
    minutes: Annotated[
        float | None, typer.Option(min=0.1, help="wall minutes (overrides the file)")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """An Optuna study (TPE, median pruner); every trial a DVC experiment of the train stage.

    Resumes the study when it exists (OPTUNA_STORAGE, else optuna.db). Writes reports/tune.json
    and reports/tune/*.png; applying the best params is yours to do with the printed command.
    """
    with one_line_errors("tune"):
        from mnist_pipeline.ops.tune import TUNE_REPORT, load_config, run_study

        found = run_study(load_config(config), trials=trials, minutes=minutes)
    best = found["best"]
    states = [t["state"] for t in found["trials"]]
    counts = ", ".join(f"{states.count(s)} {s.lower()}" for s in sorted(set(states)))
    emit(as_json, found,
         f"study {found['study']}: {len(states)} trials ({counts}); best trial {best['number']} "
         f"{found['objective']} {best['value']:.4f}; {TUNE_REPORT}\n"
         f"apply it (deliberately): {best['apply']}")  # fmt: skip


@app.command("train-distributed", epilog="Example: mnist train-distributed --workers 2")
def train_distributed(
    workers: Annotated[
        int | None, typer.Option(min=1, help="start N local workers on loopback ports")
    ] = None,
    worker: Annotated[
        bool, typer.Option("--worker", help="be one worker (TF_CONFIG or an indexed Job's env)")
    ] = False,
) -> None:
    """The train stage on several TensorFlow workers (train.distribution: multi_worker)."""
    if (workers is None) == (not worker):
        fail("train-distributed", "give exactly one of --workers N and --worker")
    # As a stage logs: each worker says when it joined and what it did, prefixed by the launcher.
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    with one_line_errors("train-distributed"):
        from mnist_pipeline.ops import train_distributed as distributed

        if worker:
            distributed.worker()
        else:
            distributed.launch(workers or 1)


def main() -> None:
    """The ``mnist`` console script: ``.env`` first, then the sub-command."""
    load_env(Path.cwd())
    app()
