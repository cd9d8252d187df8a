import time
from pathlib import Path

import pytest

from mnist_pipeline.errors import PipelineError
from mnist_pipeline.model_card import registry_section, render_model_card
from mnist_pipeline.params import Params, flatten
from mnist_pipeline.registry import decide
from mnist_pipeline.stages.register import model_md5
from mnist_pipeline.tracking import (
    Store,
    check_reachable,
    flat_metrics,
    resolve_store,
    source_tags,
)
from tests.support.servers import free_port


def test_gate_needs_the_floor_and_no_regression_beyond_tolerance() -> None:
    first = decide(0.995, min_accuracy=0.99, tolerance=0.001)
    assert first.passed
    assert "no production model yet" in first.reason
    low = decide(0.98, min_accuracy=0.99, tolerance=0.001)
    assert not low.passed
    assert "below register.min_accuracy 0.9900" in low.reason
    worse = decide(0.9925, 0.99, 0.001, production_version="3", production_accuracy=0.9940)
    assert not worse.passed
    assert "worse than production v3 (0.9940)" in worse.reason
    within = decide(0.9932, 0.99, 0.001, production_version="3", production_accuracy=0.9940)
    assert within.passed
    assert within.as_dict()["production_accuracy"] == 0.9940


def test_embedded_store_is_absolute_under_dvc_root(isolated_mlflow: Path) -> None:
    store = resolve_store()
    assert store.uri == f"sqlite:///{isolated_mlflow / 'mlflow.db'}"
    assert store.artifact_root == isolated_mlflow / "mlartifacts"
    assert not store.remote


def test_tracking_uri_from_env_file(isolated_mlflow: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (isolated_mlflow / ".env").write_text("MLFLOW_TRACKING_URI=http://127.0.0.1:5999\n")
    store = resolve_store()
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # load_dotenv set it
    assert store == Store("http://127.0.0.1:5999", None)
    assert store.remote


def test_unreachable_server_fails_fast_naming_the_uri() -> None:
    uri = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(PipelineError, match=f"MLflow tracking server {uri} is unreachable"):
        check_reachable(Store(uri, None), timeout_s=2)
    assert time.monotonic() - started < 5


def test_flattening_params_and_metrics() -> None:
    flat = flatten(Params())
    assert flat["train.epochs"] == "10"
    assert flat["preprocess.limit"] == "null"
    assert flat["train.augment.max_shift"] == "2"
    metrics = {"test": {"accuracy": 0.99, "per_class": {"3": {"recall": 0.5}}, "note": "x"}}
    assert flat_metrics(metrics) == {"test/accuracy": 0.99, "test/per_class/3/recall": 0.5}


def test_source_tags_name_the_dvc_experiment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DVC_EXP_NAME", "bushy-lamb")
    monkeypatch.setenv("DVC_EXP_BASELINE_REV", "abc123")
    tags = source_tags()
    assert tags["dvc.exp_name"] == "bushy-lamb"
    assert tags["dvc.baseline"] == "abc123"
    assert tags["git.dirty"] in {"true", "false"}


def test_model_md5_from_dvc_lock(tmp_path: Path) -> None:
    lock = tmp_path / "dvc.lock"
    lock.write_text(
        "schema: '2.0'\nstages:\n  train:\n    outs:\n    - path: models/mnist\n"
        "      md5: 0123abc.dir\n"
    )
    assert model_md5(lock, Path("models/mnist")) == "0123abc.dir"
    assert model_md5(tmp_path / "missing.lock") == "unknown"


def test_model_card_holds_nothing_store_specific() -> None:
    metrics = {
        "accuracy": 0.9951,
        "loss": 0.02,
        "f1_macro": 0.995,
        "errors": 49,
        "count": 10000,
        "per_class": {
            str(c): {"precision": 1.0, "recall": 0.99, "support": 1000} for c in range(10)
        },
    }
    card = render_model_card("mnist-classifier", "sha256:0123456789ab", metrics,
                             flatten(Params()), 0.99)  # fmt: skip
    assert card.startswith("# Model card: mnist-classifier `sha256:0123456789ab`")
    assert "| 0.9951 | 0.0200 | 0.9950 | 49 / 10000 |" in card
    assert "mnist registry rollback" in card
    assert "Quality floor (`register.min_accuracy` 0.9900): **passed**" in card
    low = render_model_card("m", "sha256:x", {**metrics, "accuracy": 0.98}, {}, 0.99)
    assert "**not passed**" in low
    assert "calibrated" not in low  # metrics from before calibration: no claim about it
    calibrated = render_model_card("m", "sha256:x", {**metrics, "ece": 0.0014}, {}, 0.99)
    assert "expected calibration error\n0.0014 on the test set" in calibrated
    record = {
        "name": "mnist-classifier",
        "version": "4",
        "run_id": "r1",
        "aliases": {"candidate": "4", "production": "4", "previous": "3"},
        "gate": decide(0.9951, 0.99, 0.001).as_dict(),
    }
    section = registry_section(record)
    assert "Version 4 of `mnist-classifier` (MLflow run `r1`)" in section
    assert "aliases on this version: `candidate`, `production`" in section
    assert "Quality gate: **passed**" in section


def test_only_the_committed_main_workspace_may_promote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess

    from mnist_pipeline.tracking import may_promote

    def git(*args: str) -> None:
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@e.invalid", *args],
                       cwd=tmp_path, check=True, capture_output=True)  # fmt: skip

    for name in ("DVC_EXP_NAME", "DVC_EXP_BASELINE_REV", "GITHUB_EVENT_NAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    assert may_promote("main") == (False, "not on a branch, not register.promote_branch (main)")
    git("init", "-q", "-b", "main")
    (tmp_path / "params.yaml").write_text("seed: 1\n")
    git("add", "params.yaml")
    git("commit", "-qm", "params")
    assert may_promote("main") == (True, "the committed workspace of main")
    assert may_promote("") == (False, "register.promote_branch is empty")

    (tmp_path / "params.yaml").write_text("seed: 2\n")
    assert may_promote("main") == (False, "uncommitted changes on main")
    git("checkout", "-q", "-b", "feature")
    assert may_promote("main") == (False, "branch feature, not register.promote_branch (main)")
    git("checkout", "-q", "main")
    git("commit", "-qam", "seed 2")

    monkeypatch.setenv("DVC_EXP_NAME", "lr-sweep-3")
    assert may_promote("main") == (False, "DVC experiment lr-sweep-3")
    monkeypatch.delenv("DVC_EXP_NAME")
    monkeypatch.setenv("GITHUB_EVENT_NAME", "pull_request")
    assert may_promote("main") == (False, "a pull-request run")
