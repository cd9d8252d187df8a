"""The pipeline's MLflow mirror and the registry, against the embedded store, in-process."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import numpy as np
import pytest
import yaml
from mlflow.tracking import MlflowClient

from mnist_contracts.model import content_version
from mnist_pipeline import saved_model
from mnist_pipeline.errors import PipelineError
from mnist_pipeline.registry import Registry
from mnist_pipeline.tracking import connect
from tests.support import run_mnist, tree_digest
from tests.support.project_repo import git
from tests.support.servers import free_port
from tests.support.stages import run_evaluate, run_preprocess, run_register, run_train

pytestmark = pytest.mark.slow


def set_params(w: Path, **sections: dict[str, object]) -> None:
    params = yaml.safe_load((w / "params.yaml").read_text())
    for section, values in sections.items():
        params.setdefault(section, {}).update(values)
    (w / "params.yaml").write_text(yaml.safe_dump(params))
    git(w, "commit", "-qam", "params")  # committed, as a change on main would be


def full_run(w: Path) -> dict[str, object]:
    run_train(w)
    run_evaluate(w)
    return run_register(w)


def test_one_run_per_pipeline_execution_with_everything(workdir: Path) -> None:
    set_params(workdir, register={"min_accuracy": 0.5})
    run_preprocess(workdir)
    record = full_run(workdir)

    connect()
    client = MlflowClient()
    experiment = client.get_experiment_by_name("mnist-classifier")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1
    run = runs[0]
    # Found by the model it produced: the run id is in no file of the workspace.
    assert run.data.tags["model.digest"] == content_version(workdir / "models/mnist")
    assert run.info.run_id == record["run_id"]
    assert "mirror.restored" not in run.data.tags
    assert run.data.params["train.epochs"] == "2"
    assert run.data.params["train.arch"] == "mlp"
    assert run.data.tags["git.commit"]
    history = client.get_metric_history(run.info.run_id, "val/accuracy")
    assert [m.step for m in history] == [0, 1]
    # The same callback fed DVCLive: the curves agree number for number.
    tsv = (workdir / "reports/train/plots/metrics/val/accuracy.tsv").read_text().splitlines()[1:]
    assert [float(line.split("\t")[1]) for line in tsv] == pytest.approx([m.value for m in history])
    metrics = json.loads((workdir / "reports/metrics.json").read_text())["test"]
    assert run.data.metrics["test/accuracy"] == pytest.approx(metrics["accuracy"])
    assert run.data.metrics["test/per_class/3/recall"] == pytest.approx(
        metrics["per_class"]["3"]["recall"]
    )
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "evaluation")}
    assert "evaluation/mistakes.png" in artifacts
    # The embedded store sits at the (DVC) root, absolute, never the file store.
    assert (workdir / "mlflow.db").is_file()
    assert not (workdir / "mlruns").exists()

    # Registered, passed the (lowered) gate, loadable by alias, same probabilities.
    assert record["version"] == "1"
    assert record["aliases"] == {"candidate": "1", "production": "1"}
    assert record["gate"]["passed"] is True
    model = mlflow.pyfunc.load_model("models:/mnist-classifier@candidate")
    test = np.load(workdir / "data/prepared/test.npz")
    expected = saved_model.load(workdir / "models/mnist")(test["x"][:50])
    np.testing.assert_allclose(model.predict(test["x"][:50]), expected, rtol=1e-6)
    # The registered artifact holds the exported SavedModel byte for byte.
    local = Path(mlflow.artifacts.download_artifacts("models:/mnist-classifier/1"))
    mlmodel = yaml.safe_load((local / "MLmodel").read_text())
    inside = mlmodel["flavors"]["python_function"]["artifacts"]["saved_model"]["path"]
    assert tree_digest(local / inside) == tree_digest(workdir / "models/mnist")
    assert mlmodel["signature"]["inputs"]
    card = (workdir / "reports/model_card.md").read_text()
    digest = content_version(workdir / "models/mnist")
    assert card.startswith(f"# Model card: mnist-classifier `{digest}`")
    assert "v1" not in card  # nothing store-specific
    assert str(record["run_id"]) not in card
    description = client.get_model_version("mnist-classifier", "1").description
    assert description.startswith(card)
    assert "Version 1 of `mnist-classifier`" in description
    assert client.get_model_version("mnist-classifier", "1").tags["model.digest"] == digest


def test_gate_rollback_and_idempotent_registration(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_preprocess(workdir)
    # The tiny data are learnt almost perfectly; a loose tolerance keeps the test about aliases.
    set_params(workdir, register={"min_accuracy": 0.5, "tolerance": 1.0})
    assert full_run(workdir)["aliases"]["production"] == "1"

    # Registering the same model again reuses its version instead of adding a duplicate.
    run_register(workdir)
    connect()
    assert [v.version for v in Registry("mnist-classifier").versions()] == ["1"]
    # So does a retrain that gives the same bytes: idempotent by content, not by run.
    assert full_run(workdir)["version"] == "1"
    assert [v.version for v in Registry("mnist-classifier").versions()] == ["1"]

    # Passes the gate: promoted, v1 becomes previous.
    set_params(workdir, train={"epochs": 3})
    assert full_run(workdir)["aliases"] == {"candidate": "2", "previous": "1", "production": "2"}

    # Below the floor (an untrained model): registered, but no alias moves to it.
    set_params(workdir, train={"epochs": 1, "learning_rate": 1e-7})
    record = full_run(workdir)
    assert record["gate"]["passed"] is False
    assert "below register.min_accuracy" in record["gate"]["reason"]
    assert record["version"] == "3"
    assert record["aliases"] == {"candidate": "2", "previous": "1", "production": "2"}

    assert run_mnist("registry", "rollback") == 0
    assert "rolled back from v2 to v1" in capsys.readouterr().out
    assert Registry("mnist-classifier").alias("production").version == "1"  # type: ignore[union-attr]
    assert run_mnist("registry", "promote", "3") == 0
    assert "v3 is production (was v1, now alias previous)" in capsys.readouterr().out
    assert run_mnist("registry", "list") == 0
    listing = capsys.readouterr().out
    assert "      3  production " in listing
    assert listing.count("\n") == 4  # header + three versions

    assert run_mnist("registry", "promote", "9") == 2
    assert "version 9 of mnist-classifier does not exist" in capsys.readouterr().err


def test_cli_with_an_unreachable_server_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    uri = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    assert run_mnist("registry", "list") == 2
    err = capsys.readouterr().err
    expected = f"mnist registry list: error: MLflow tracking server {uri} is unreachable"
    assert err.startswith(expected)
    assert err.count("\n") == 1


def test_train_with_an_unreachable_server_fails_before_any_work(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_preprocess(workdir)
    uri = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    with pytest.raises(PipelineError, match=f"{uri} is unreachable"):
        run_train(workdir)
    assert not (workdir / "models").exists()


RACE = """
import sys, time
from pathlib import Path
import mlflow
from mnist_pipeline import tracking
root, start = Path(sys.argv[1]), float(sys.argv[2])
while time.time() < start:
    time.sleep(0.005)
tracking.connect(root)
mlflow.set_experiment("race")
with mlflow.start_run():
    mlflow.log_metric("x", 1.0)
"""


def test_pipelines_that_open_a_new_embedded_store_at_once_all_succeed(tmp_path: Path) -> None:
    """Parallel queued experiments create mlflow.db together: one creates it, all log."""
    start = time.time() + 8  # every process imported mlflow and waits at the same instant
    env = {**os.environ, "DVC_ROOT": str(tmp_path)}
    env.pop("MLFLOW_TRACKING_URI", None)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACE, str(tmp_path), str(start)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], "\n".join(o[-1500:] for o in outputs)
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("race")
    assert len(client.search_runs([experiment.experiment_id])) == 3
