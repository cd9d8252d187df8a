"""Multi-worker training on loopback: real TensorFlow workers, the launcher and its errors."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mnist_pipeline import cluster as clusters
from mnist_pipeline import saved_model
from mnist_pipeline.dataset import RawMnist, Split
from mnist_pipeline.errors import PipelineError
from mnist_pipeline.params import WheelSource
from mnist_pipeline.sources import fetch_wheel
from mnist_pipeline.stages import preprocess
from tests.support import mnist
from tests.support.data import variables_digest
from tests.support.project_repo import git


def test_multi_worker_without_a_cluster_fails_before_training(workdir: Path) -> None:
    from mnist_pipeline.stages import preprocess, train

    preprocess.main(workdir)
    with pytest.raises(PipelineError, match="TF_CONFIG is not set"):
        train.main(workdir, distribution="multi_worker")
    assert not (workdir / "models").exists()


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != clusters.TF_CONFIG}
    return subprocess.run(
        mnist("train-distributed", *args),
        cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip


def test_the_launcher_refuses_a_workspace_without_prepared_data(workdir: Path) -> None:
    result = cli("--workers", "2", cwd=workdir)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "mnist train-distributed: error: data/prepared/train.npz is missing: run `make repro` "
        "(or `dvc repro preprocess`)"
    ]


def test_a_bad_batch_for_the_worker_count_is_each_workers_one_line(workdir: Path) -> None:
    from mnist_pipeline.stages import preprocess

    preprocess.main(workdir)
    # 16 images per batch cannot be split over 3 workers: every worker refuses at once.
    result = cli("--workers", "3", cwd=workdir)
    assert result.returncode == 2
    assert "divisible by the 3 workers" in result.stdout  # the worker's own line, prefixed
    last = result.stderr.strip().splitlines()[-1]
    assert re.fullmatch(
        r"mnist train-distributed: error: worker \d exited with code 2 .*the other workers were "
        r"stopped",
        last,
    ), last
    assert not (workdir / "models").exists()


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(c) for c in path.read_text().split()] if path.exists() else []


def test_a_lost_worker_stops_the_one_waiting_for_it(workdir: Path) -> None:
    """Worker 0 would wait for worker 1 forever: the launcher stops it and says which one died."""
    from mnist_pipeline.stages import preprocess

    preprocess.main(workdir)
    env = {k: v for k, v in os.environ.items() if k != clusters.TF_CONFIG}
    launcher = subprocess.Popen(
        mnist("train-distributed", "--workers", "2"),
        cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert launcher.stdout is not None
    for line in launcher.stdout:  # wait until both workers have joined the cluster
        if "[worker 1]" in line and "joined" in line:
            break
    workers = children(launcher.pid)
    assert len(workers) == 2
    os.kill(workers[1], signal.SIGKILL)
    _, err = launcher.communicate(timeout=120)
    assert launcher.returncode == 2
    assert err.strip().splitlines()[-1] == (
        "mnist train-distributed: error: worker 1 exited with code -9 (its output is above, "
        "prefixed [worker 1]); the other workers were stopped"
    )
    assert all(not Path(f"/proc/{pid}").exists() for pid in workers)


def test_a_worker_outside_any_cluster_says_how_to_start_one(tmp_path: Path) -> None:
    result = cli("--worker", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "mnist train-distributed: error: no TF_CONFIG and not an indexed Job: "
        "JOB_COMPLETION_INDEX, WORKERS, JOB_NAME, SERVICE_NAME unset "
        "(see kubernetes/training/train-distributed.yaml)"
    )


# The comparison needs a model that has learnt something (one worker above 85%, two within two
# points of it: 5,000 training images suffice for an MLP) and more than one epoch, so that equal
# per-epoch validation logs on both workers mean equal weights all along (3 epochs).
PARAMS = (
    "seed: 3\n"
    "preprocess: {val_size: 1000, limit: null}\n"
    "train: {arch: mlp, epochs: 3, batch_size: 64, warmup_epochs: 0, units: 64,"
    " learning_rate: 0.01, label_smoothing: 0.0, augment: {max_shift: 0}}\n"
)


@pytest.fixture(scope="module")
def real_mnist() -> RawMnist:
    """6,000 real training images (1,000 become validation) and 2,000 official test images."""
    raw = fetch_wheel(WheelSource(), timeout_s=120)
    return RawMnist(
        train=Split(raw.train.x[:6000], raw.train.y[:6000]),
        test=Split(raw.test.x[:2000], raw.test.y[:2000]),
    )


def workspace(path: Path, raw: RawMnist) -> Path:
    """A committed repository laid out like this one, with the data prepared."""
    path.mkdir()
    (path / "params.yaml").write_text(PARAMS)
    (path / "data/raw").mkdir(parents=True)
    np.savez(
        path / "data/raw/mnist.npz",
        x_train=raw.train.x, y_train=raw.train.y, x_test=raw.test.x, y_test=raw.test.y,
    )  # fmt: skip
    git(path, "init", "-q", "-b", "main")
    git(path, "add", "params.yaml")
    git(path, "commit", "-qm", "params")
    preprocess.main(path)
    return path


def files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if ".git" not in p.parts}


def accuracy_of(model_dir: Path, test: Split) -> float:
    probs = saved_model.load(model_dir)(test.x)
    return float(np.mean(np.argmax(probs, axis=1) == test.y))


def env_for(root: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != clusters.TF_CONFIG}
    return {**env, "DVC_ROOT": str(root), "TF_CPP_MIN_LOG_LEVEL": "2", **extra}


@pytest.mark.slow
def test_two_workers_train_what_one_machine_trains_and_only_the_chief_writes(
    tmp_path: Path, real_mnist: RawMnist
) -> None:
    single = workspace(tmp_path / "single", real_mnist)
    chief_dir = shutil.copytree(single, tmp_path / "chief")
    other_dir = shutil.copytree(single, tmp_path / "other")
    shared = shutil.copytree(single, tmp_path / "shared")
    before = files(other_dir)

    subprocess.run(
        [sys.executable, "-m", "mnist_pipeline.stages.train"],
        cwd=single, env=env_for(single), check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    # Two workers on loopback, each in its own copy of the workspace, so what each one writes
    # shows: the chief's directory gets the outputs, the other's stays as it was.
    workers = [
        subprocess.Popen(
            mnist("train-distributed", "--worker"),
            cwd=where,
            env=env_for(where, TF_CONFIG=cluster.tf_config()),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for cluster, where in zip(clusters.local_cluster(2), (chief_dir, other_dir), strict=True)
    ]
    outputs = [w.communicate(timeout=600)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]
    assert files(other_dir) == before
    assert "worker 1 done; the chief (worker 0) writes the model" in outputs[1]
    # Both workers saw the same validation numbers (their weights are identical).
    epochs = [re.findall(r"epoch \d: (.*); ", out) for out in outputs]
    assert len(epochs[0]) == 3
    assert epochs[0] == epochs[1]

    one = accuracy_of(single / "models/mnist", real_mnist.test)
    two = accuracy_of(chief_dir / "models/mnist", real_mnist.test)
    print(f"test accuracy: 1 worker {one:.4f}, 2 workers {two:.4f}")
    assert one > 0.85
    assert abs(two - one) <= 0.02
    tsv = (chief_dir / "reports/train/plots/metrics/val/accuracy.tsv").read_text().splitlines()
    assert len(tsv) == 1 + 3  # DVCLive: header and one row per epoch

    # The chief's MLflow run says how it was trained.
    query = (
        "import mlflow; c = mlflow.MlflowClient('sqlite:///mlflow.db');"
        "r = c.search_runs([c.get_experiment_by_name('mnist-classifier').experiment_id])[0];"
        "print(r.data.params['train.distribution'], r.data.params['train.workers'],"
        " len(c.get_metric_history(r.info.run_id, 'val/accuracy')))"
    )
    shown = subprocess.run(
        [sys.executable, "-c", query], cwd=chief_dir, capture_output=True, text=True, check=True
    )
    assert shown.stdout.split() == ["multi_worker", "2", "3"]

    # The same worker count again, through the launcher, both workers in one workspace:
    # byte-identical weights.
    launched = subprocess.run(
        mnist("train-distributed", "--workers", "2"),
        cwd=shared, env=env_for(shared), capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert launched.returncode == 0, launched.stdout[-3000:] + launched.stderr[-2000:]
    assert "[worker 1]" in launched.stdout
    assert variables_digest(shared / "models/mnist") == variables_digest(chief_dir / "models/mnist")
    assert variables_digest(shared / "models/mnist") != variables_digest(single / "models/mnist")
