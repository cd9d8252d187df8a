from pathlib import Path

import pytest

from mnist_pipeline import cli
from mnist_pipeline.atomic import atomic_path, write_text
from mnist_pipeline.errors import PipelineError


def test_failure_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    write_text(target, "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_directory_is_replaced_whole(tmp_path: Path) -> None:
    target = tmp_path / "model"
    with atomic_path(target, directory=True) as tmp:
        (tmp / "a").write_text("1")
    with atomic_path(target, directory=True) as tmp:
        (tmp / "b").write_text("2")
    assert sorted(p.name for p in target.iterdir()) == ["b"]
    with pytest.raises(RuntimeError), atomic_path(target, directory=True) as tmp:
        (tmp / "c").write_text("3")
        raise RuntimeError
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    assert sorted(p.name for p in target.iterdir()) == ["b"]


def test_stage_error_is_one_line_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    def failing() -> None:
        raise PipelineError("checksum mismatch for x; try another source")

    with pytest.raises(SystemExit) as info:
        cli.run_stage(failing, "fetch")
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert err == "fetch: error: checksum mismatch for x; try another source\n"


def test_cli_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["deploy"])
    assert info.value.code == 2
    assert "usage: mnist-pipeline" in capsys.readouterr().err


def test_cli_runs_a_stage_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no params.yaml here: the stage must say so in one line
    with pytest.raises(SystemExit) as info:
        cli.main(["preprocess"])
    assert info.value.code == 1


def test_every_console_script_points_at_a_callable() -> None:
    """pyproject's [project.scripts] survive module moves: each target imports and is callable."""
    import importlib
    import tomllib

    from tests.support import PROJECT_ROOT

    scripts = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert set(scripts) == {"mnist"}  # one command; its sub-commands are the old scripts
    for name, target in scripts.items():
        module, _, attribute = target.partition(":")
        assert callable(getattr(importlib.import_module(module), attribute)), name
