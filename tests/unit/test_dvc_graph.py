"""The graph cannot go stale: every stage depends on every module its command imports."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support import PROJECT_ROOT

SRC = PROJECT_ROOT / "src"
PACKAGE = "mnist_pipeline"
# The packages of this repository whose files a stage can import.
OURS = {PACKAGE, "mnist_contracts"}


def module_file(name: str, src: Path = SRC) -> Path | None:
    """The file that defines module ``name`` under ``src``, or None if it is not ours."""
    base = src.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_modules(path: Path, name: str) -> set[str]:
    """Modules of the package that ``path`` (module ``name``) imports, anywhere in its body."""
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            found.add(module)
            # ``from pkg import sub`` imports the submodule ``pkg.sub`` when it is one.
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return {m for m in found if m.split(".")[0] in OURS}


def import_closure(module: str, src: Path = SRC) -> set[Path]:
    """Every file of the package that ``python -m module`` executes, with parent packages."""
    seen: set[Path] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        parts = name.split(".")
        # Importing a.b.c runs a/__init__.py and a/b/__init__.py first.
        for i in range(1, len(parts) + 1):
            path = module_file(".".join(parts[:i]), src)
            if path is None or path in seen:
                continue
            seen.add(path)
            todo.extend(imported_modules(path, ".".join(parts[:i])))
    return seen


def stages() -> dict[str, dict[str, object]]:
    document = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text(encoding="utf-8"))
    return dict(document["stages"])


@pytest.mark.parametrize("stage", sorted(stages()))
def test_stage_deps_hold_every_module_its_command_imports(stage: str) -> None:
    spec = stages()[stage]
    match = re.search(r"python -m ([\w.]+)", str(spec["cmd"]))
    assert match, f"{stage}: cmd does not run `python -m MODULE`"
    deps = {str(d) for d in spec.get("deps", [])}  # type: ignore[union-attr]
    closure = import_closure(match.group(1))
    assert closure, f"{stage}: {match.group(1)} is not a module under src/"
    needed = {str(p.relative_to(PROJECT_ROOT)) for p in closure}
    missing = sorted(needed - deps)
    assert not missing, f"dvc.yaml stage {stage!r} imports but does not depend on: {missing}"


@pytest.mark.parametrize("stage", sorted(stages()))
def test_stage_code_deps_exist(stage: str) -> None:
    deps = [str(d) for d in stages()[stage].get("deps", [])]  # type: ignore[union-attr]
    absent = [d for d in deps if d.startswith("src/") and not (PROJECT_ROOT / d).exists()]
    assert not absent, f"dvc.yaml stage {stage!r} depends on files that do not exist: {absent}"


def test_the_closure_follows_every_import_form(tmp_path: Path) -> None:
    pkg = tmp_path / PACKAGE
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub/__init__.py").write_text("")
    (pkg / "stage.py").write_text(
        "from mnist_pipeline import a\nimport mnist_pipeline.b\n"
        "def f():\n    from mnist_pipeline.sub.c import thing\n"
    )
    (pkg / "a.py").write_text("from . import d\n")
    (pkg / "b.py").write_text("import os\n")
    (pkg / "d.py").write_text("")
    (pkg / "e.py").write_text("")  # imported by nobody
    (pkg / "sub/c.py").write_text("from ..b import x\nthing = 1\n")
    names = {str(p.relative_to(tmp_path)) for p in import_closure(f"{PACKAGE}.stage", tmp_path)}
    assert names == {
        f"{PACKAGE}/{f}"
        for f in ("__init__.py", "stage.py", "a.py", "b.py", "d.py", "sub/__init__.py", "sub/c.py")
    }


def declared_paths(entries: object) -> set[str]:
    """Paths of a dvc.yaml list whose items are ``path`` or ``{path: options}``."""
    found = set()
    for entry in entries or []:  # type: ignore[attr-defined]
        found.add(next(iter(entry)) if isinstance(entry, dict) else str(entry))
    return found


@pytest.mark.parametrize("stage", sorted(stages()))
def test_stage_paths_come_from_the_paths_module(stage: str) -> None:
    """dvc.yaml and mnist_contracts.paths name the same data deps and outputs for each stage."""
    from mnist_contracts.paths import STAGES

    spec = stages()[stage]
    data_deps = {d for d in declared_paths(spec.get("deps")) if not d.startswith("src/")}
    outs = set().union(*(declared_paths(spec.get(k)) for k in ("outs", "metrics", "plots")))
    assert data_deps == {str(p) for p in STAGES[stage].deps}, f"{stage}: deps"
    assert outs == {str(p) for p in STAGES[stage].outs}, f"{stage}: outs"


def test_every_stage_in_dvc_yaml_has_paths_and_a_module() -> None:
    from mnist_contracts.paths import STAGES
    from mnist_pipeline.cli import STAGES as RUNNABLE

    assert set(stages()) == set(STAGES) == set(RUNNABLE)


@pytest.mark.parametrize("stage", ["fetch", "preprocess"])
def test_stages_that_need_neither_import_neither_tensorflow_nor_mlflow(stage: str) -> None:
    """Every ``dvc repro`` pays each stage's imports: 15 s for TensorFlow, 6 s for MLflow here."""
    program = (
        f"import sys, mnist_pipeline.stages.{stage}\n"
        "print(sorted(m for m in ('tensorflow', 'keras', 'mlflow') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT / "src")},
    )  # fmt: skip
    assert result.stdout.strip() == "[]"
