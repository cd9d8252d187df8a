"""``tune.yaml``: the committed study file validates, and a bad one is one line, exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mnist_pipeline.errors import PipelineError
from mnist_pipeline.ops.tune import TuneConfig, load_config
from tests.support import mnist

ROOT = Path(__file__).resolve().parents[2]


def test_the_committed_study_searches_params_that_exist() -> None:
    config = load_config(ROOT / "tune.yaml")
    assert {"train.learning_rate", "train.batch_size", "train.dropout"} <= set(config.space)
    assert config.trials or config.minutes


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"space": {"train.learnign_rate": {"low": 0.1, "high": 0.2}}}, "train.learnign_rate"),
        ({"space": {"train.dropout": {"low": 0.5, "high": 0.1}}}, "low must be smaller"),
        ({"space": {"train.dropout": {"choices": [0.1], "low": 0.1, "high": 0.2}}}, "either"),
        ({"trials": None, "minutes": None}, "budget"),
    ],
)
def test_a_bad_study_file_is_refused_by_name(
    tmp_path: Path, change: dict[str, object], named: str
) -> None:
    document = {**yaml.safe_load((ROOT / "tune.yaml").read_text()), **change}
    (tmp_path / "tune.yaml").write_text(yaml.safe_dump(document))
    with pytest.raises(PipelineError, match=named):
        load_config(tmp_path / "tune.yaml")


def test_the_command_says_it_in_one_line_and_creates_no_study(tmp_path: Path) -> None:
    (tmp_path / "tune.yaml").write_text("study: s\nspace: {train.nope: {low: 0, high: 1}}\n")
    env = {"PATH": str(Path(sys.executable).parent)}
    result = subprocess.run(
        mnist("tune"), cwd=tmp_path, capture_output=True, text=True, check=False, env=env
    )
    assert result.returncode == 2
    assert "train.nope" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "optuna.db").exists()
    assert TuneConfig.model_fields["study"].is_required()


def test_a_drawn_combination_the_params_refuse_fails_that_trial_not_the_study(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import optuna

    from mnist_pipeline.ops.tune import run_study

    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("OPTUNA_STORAGE", raising=False)
    # Every draw puts the learning-rate warm-up past the epochs: the params model refuses it.
    config = TuneConfig.model_validate({
        "study": "refused", "trials": 2, "fixed": {"train.epochs": 1},
        "space": {"train.warmup_epochs": {"low": 3, "high": 4}},
    })  # fmt: skip
    with pytest.raises(PipelineError, match="no trial completed"):
        run_study(config, tmp_path)
    study = optuna.load_study(study_name="refused", storage=f"sqlite:///{tmp_path}/optuna.db")
    assert [t.state.name for t in study.trials] == ["FAIL", "FAIL"]  # both tried, both recorded
    report = json.loads((tmp_path / "reports/tune.json").read_text())
    assert "warmup_epochs must be smaller than epochs" in report["trials"][0]["error"]


def test_the_committed_spaces_integer_ranges_draw_integers() -> None:
    import optuna

    from mnist_pipeline.ops.tune import suggest

    config = load_config(ROOT / "tune.yaml")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    drawn = suggest(study.ask(), config.space)
    assert isinstance(drawn["train.epochs"], int)
    assert isinstance(drawn["train.augment.max_shift"], int)
    assert isinstance(drawn["train.dropout"], float)
    assert drawn["train.batch_size"] in (64, 128, 256)


def test_a_point_drawn_again_is_found_among_the_finished_trials() -> None:
    import optuna

    from mnist_pipeline.ops.tune import _same_params

    study = optuna.create_study(direction="maximize")
    for x in (1, 2):
        study.enqueue_trial({"x": x})
        trial = study.ask()
        trial.suggest_int("x", 0, 3)
        study.tell(trial, 0.5 + x)
    study.enqueue_trial({"x": 2})
    again = study.ask()
    again.suggest_int("x", 0, 3)
    assert _same_params(study, again).number == 1  # its value is reused, no experiment is run
    study.enqueue_trial({"x": 3})
    new = study.ask()
    new.suggest_int("x", 0, 3)
    assert _same_params(study, new) is None
