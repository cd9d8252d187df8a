import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mnist_pipeline import cli
from mnist_pipeline.atomic import atomic_path, write_text
from mnist_pipeline.commands import app
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


def test_stage_error_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    def failing() -> None:
        raise PipelineError("checksum mismatch for x; try another source")

    with pytest.raises(SystemExit) as info:
        cli.run_stage(failing, "fetch")
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err == "fetch: error: checksum mismatch for x; try another source\n"


def test_an_unknown_stage_is_one_line_naming_the_stages() -> None:
    result = CliRunner().invoke(app, ["stage", "deploy"])
    assert result.exit_code == 2
    assert result.stderr == (
        f"mnist stage: error: unknown stage 'deploy': choose one of {', '.join(cli.STAGES)}\n"
    )


def test_a_stage_runs_by_name_with_the_stage_exit_codes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no params.yaml here: the stage must say so in one line
    result = subprocess.run(
        [sys.executable, "-m", "mnist_pipeline.commands", "stage", "preprocess"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.startswith("preprocess: error: ")
    assert "params.yaml" in result.stderr
    assert "Traceback" not in result.stderr


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
