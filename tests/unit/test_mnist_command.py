"""The `mnist` command: every mention answers `--help`, one table of exit codes, `.env` read.

The names users meet (README, docs, Makefile, images, manifests, error messages) must all be
sub-commands that exist; the old per-tool scripts must be gone from everything but the changelog.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mnist_pipeline.commands import app
from mnist_pipeline.drift_features import FEATURES, OUTPUTS
from mnist_pipeline.errors import PipelineError
from mnist_pipeline.ops.tools import tool
from tests.support import PROJECT_ROOT, mnist

# `mnist WORD [WORD]` where a command is written: not `mnist_pipeline`, `data/mnist`, `mnist-api`.
MENTION = re.compile(r"(?<![\w/.:-])mnist ([a-z][a-z-]*)(?: ([a-z][a-z-]*))?")
PROSE = {"command"}  # "the mnist command"
OLD = re.compile(
    r"(?<![\w/.-])mnist-(pipeline|registry|report|monitor|seeds|remote|collect|score"
    r"|train-distributed|shadow)(?![\w:-])|python -m app\.shadow"
)
# Where an old name is a name, not a command: the distribution, images, Kubernetes objects.
NAMES_NOT_COMMANDS = re.compile(
    r'name = "mnist-pipeline"|-t mnist-(monitor|pipeline) |(name|deployment)[:/] ?mnist-'
    r"|`mnist-monitor` image|ghcr\.io/OWNER/mnist-|image: mnist-|--digest mnist-"
    r"|four images|`mnist-pipeline`\) to|COLD_IMAGES|pushed_images\(\) =="
    r"|digest mnist-|\"mnist-(api|monitor)[\"=]"
)
SELF = {"CHANGELOG.md", str(Path(__file__).relative_to(PROJECT_ROOT))}
BINARY = (".lock", ".npz", ".png", ".json", ".csv", ".pb", ".dvc", ".tflite", ".ipynb")


def tracked_text() -> dict[str, str]:
    """Every committed text file but the changelog and this test (they name old and partial
    commands on purpose)."""
    listed = subprocess.run(
        ["git", "ls-files"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    texts = {}
    for name in listed:
        path = PROJECT_ROOT / name
        if name in SELF or name.endswith(BINARY) or not path.is_file():
            continue
        try:
            texts[name] = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
    return texts


def mentioned_commands() -> dict[tuple[str, ...], str]:
    """Each distinct command path the repository writes (``("registry", "promote")``), and where."""
    groups = {"registry", "remote"}
    found: dict[tuple[str, ...], str] = {}
    for name, text in tracked_text().items():
        for match in MENTION.finditer(text):
            first, second = match.groups()
            if first in PROSE:
                continue
            path = (first, second) if first in groups and second else (first,)
            found.setdefault(path, name)
    return found


def test_every_mnist_command_the_repository_mentions_answers_help_with_an_example() -> None:
    mentioned = mentioned_commands()
    # The scan sees the commands the README documents, groups and their sub-commands alike.
    assert {("monitor",), ("registry", "promote"), ("remote", "push"), ("stage",)} <= set(mentioned)
    # One process prints every help and then says what it imported: help must not load
    # TensorFlow or MLflow (it answers in about a second).
    program = (
        "import json, sys\n"
        "from typer.testing import CliRunner\n"
        "from mnist_pipeline.commands import app\n"
        "out = {}\n"
        "for path in json.loads(sys.argv[1]):\n"
        "    r = CliRunner().invoke(app, [*path, '--help'], prog_name='mnist')\n"
        "    out[' '.join(path)] = [r.exit_code, r.output]\n"
        "heavy = sorted(m for m in ('tensorflow', 'mlflow', 'keras') if m in sys.modules)\n"
        "print(json.dumps({'helps': out, 'heavy': heavy}))\n"
    )
    paths = [[], *map(list, mentioned)]
    result = subprocess.run(
        [sys.executable, "-c", program, json.dumps(paths)],
        capture_output=True, text=True, check=True, cwd=PROJECT_ROOT,
    )  # fmt: skip
    answer = json.loads(result.stdout)
    assert answer["heavy"] == []
    for path, (code, output) in answer["helps"].items():
        where = mentioned.get(tuple(path.split()), "the root")
        assert code == 0, f"`mnist {path} --help` (mentioned in {where}) exited {code}: {output}"
        assert "Example: mnist" in output, f"`mnist {path} --help` has no example"


def test_the_old_command_names_are_gone() -> None:
    left = [
        f"{name}:{text.count(chr(10), 0, match.start()) + 1}: {match.group(0)}"
        for name, text in tracked_text().items()
        for match in OLD.finditer(text)
        if not NAMES_NOT_COMMANDS.search(
            text[text.rfind("\n", 0, match.start()) + 1 : text.find("\n", match.end())]
        )
    ]
    assert left == []


def test_the_changelog_lists_every_rename() -> None:
    changelog = (PROJECT_ROOT / "CHANGELOG.md").read_text()
    for old in ("pipeline", "registry", "report", "monitor", "seeds", "remote", "collect",
                "score", "train-distributed"):  # fmt: skip
        assert f"`mnist-{old}" in changelog
    assert "`python -m app.shadow` | `mnist shadow`" in changelog


def test_shell_completion_offers_the_sub_commands() -> None:
    """What the script of `mnist --install-completion` asks the installed command, in bash."""
    script = [str(Path(sys.executable).parent / "mnist")]
    # bash's script by name: `--show-completion` finds the shell among the process's ancestors,
    # and a test run from make under nohup or a CI runner's own process may have none.
    bash = {**os.environ, "_MNIST_COMPLETE": "source_bash"}
    installed = subprocess.run(script, capture_output=True, text=True, check=True, env=bash)
    assert "_MNIST_COMPLETE=complete_bash" in installed.stdout
    env = {**os.environ, "_MNIST_COMPLETE": "complete_bash", "COMP_WORDS": "mnist reg",
           "COMP_CWORD": "1"}  # fmt: skip
    result = subprocess.run(script, env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["registry"]
    env["COMP_WORDS"], env["COMP_CWORD"] = "mnist registry ro", "2"
    result = subprocess.run(script, env=env, capture_output=True, text=True, check=False)
    assert result.stdout.split() == ["rollback"]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["stage", "deploy"], "mnist stage: error: unknown stage 'deploy'"),
        (["seeds", "--n", "1"], "mnist seeds: error: --n 1: a spread needs at least 2 seeds"),
        (["score", "in", "--out", "o", "--engine", "gpu"], "mnist score: error: --engine 'gpu'"),
        (["train-distributed"], "mnist train-distributed: error: give exactly one of"),
        (["monitor", "--every", "0"], "mnist monitor: error: --every must be a positive"),
        (["collect", "--events", "absent.db"], "mnist collect: error: "),
        (["remote", "push"], "mnist remote push: error: "),
        (["report"], "Missing option '--base'"),
    ],
)
def test_errors_exit_2_with_one_line(
    args: list[str], says: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, args, prog_name="mnist")
    assert result.exit_code == 2, result.output
    assert says in result.stderr
    assert "Traceback" not in result.output
    if says.startswith("mnist "):
        assert result.stderr.count("\n") == 1, result.stderr


def test_a_tool_is_found_beside_the_interpreter_and_a_missing_one_is_named() -> None:
    assert tool("dvc") == str(Path(sys.executable).parent / "dvc")
    with pytest.raises(PipelineError, match="no-such-tool not found beside .* or on PATH: run"):
        tool("no-such-tool")


def test_every_command_reads_the_env_file_and_the_environment_wins(tmp_path: Path) -> None:
    """Each setting a sub-command reads comes from `.env` (here: servers that are not there, so
    each command's one-line error names what it was given); a variable in the environment wins.
    """
    (tmp_path / ".env").write_text(
        "EVENTS_URL=redis://127.0.0.1:9/0\n"
        "EVENTS_PREFIX=fromdotenv\n"
        "MLFLOW_TRACKING_URI=http://127.0.0.1:9\n"
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES=0\n"
        "SHADOW_MODEL_URI=models:/from-dotenv@candidate\n"
    )
    (tmp_path / "params.yaml").write_bytes((PROJECT_ROOT / "params.yaml").read_bytes())
    reference = tmp_path / "data/reference"
    reference.mkdir(parents=True)
    (reference / "features.csv").write_text(",".join((*FEATURES, *OUTPUTS)) + "\n")
    (reference / "reference.json").write_text("{}")
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("EVENTS_", "MLFLOW_", "SHADOW_"))}  # fmt: skip
    clean["PYTHONPATH"] = os.pathsep.join([str(PROJECT_ROOT), str(PROJECT_ROOT / "src")])
    cases = {
        "monitor": (["monitor"], {}, "redis://127.0.0.1:9/0"),
        "collect": (["collect"], {}, "redis://127.0.0.1:9/0: cannot read fromdotenv:feedback"),
        "collect, environment wins": (
            ["collect"], {"EVENTS_URL": "redis://127.0.0.1:7/0"}, "redis://127.0.0.1:7/0"
        ),
        "shadow": (["shadow", "--once"], {}, "models:/from-dotenv@candidate"),
        "registry": (["registry", "list"], {}, "http://127.0.0.1:9"),
        "score": (["score", str(tmp_path), "--out", "scored"], {}, "http://127.0.0.1:9/api/"),
    }  # fmt: skip
    # All at once: each pays its own imports, in parallel.
    running = {
        name: subprocess.Popen(
            mnist(*args),
            cwd=tmp_path,
            env={**clean, **env},
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for name, (args, env, _) in cases.items()
    }
    for name, process in running.items():
        _, err = process.communicate(timeout=300)
        assert process.returncode == 2, f"{name}: {err}"
        assert cases[name][2] in err, f"{name}: {err}"
        assert err.count("\n") == 1, f"{name}: {err}"


def test_the_docs_document_the_exit_codes_the_commands_use() -> None:
    from mnist_pipeline.commands import _base

    page = (PROJECT_ROOT / "docs/commands.md").read_text()
    section = page[page.index("**Exit codes**") : page.index("## Reference")]
    documented = {int(code) for code in re.findall(r"^\| (\d+) \|", section, re.MULTILINE)}
    used = {_base.OK, _base.NEGATIVE, _base.ERROR, _base.TOO_LITTLE_DATA, _base.INTERRUPTED}
    assert documented == used == {0, 1, 2, 3, 130}
