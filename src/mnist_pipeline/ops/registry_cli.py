"""``mnist-registry``: list versions, promote one, roll production back, or rebuild one.

For the people who run production. Uses the same tracking store as the pipeline
(``MLFLOW_TRACKING_URI``, ``.env``, or the embedded store under the repository root).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from mlflow.exceptions import MlflowException

from mnist_pipeline import tracking
from mnist_pipeline.cli import run_stage
from mnist_pipeline.errors import PipelineError
from mnist_pipeline.ops.reproduce import reproduce
from mnist_pipeline.params import PARAMS_FILE, RegisterParams, load_params
from mnist_pipeline.registry import PRODUCTION, Registry

log = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mnist-registry", description=__doc__)
    parser.add_argument("--name", help="registered model name (default: register.model_name)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="versions with their aliases and test metrics")
    promote = commands.add_parser("promote", help="make VERSION production")
    promote.add_argument("version")
    commands.add_parser("rollback", help="move production back to the previous version")
    again = commands.add_parser(
        "reproduce",
        help="rebuild VERSION from its git commit; exit 0 if the recorded, stored and rebuilt "
        "digests agree, 1 naming the ones that differ",
    )
    again.add_argument("version")
    again.add_argument("--repo", type=Path, default=Path(), help="git repository (default: .)")
    return parser


def format_versions(registry: Registry) -> str:
    """A plain table of the registered versions, newest first.

    Args:
        registry: The registered model.

    Returns:
        The table, or a line saying there are none.
    """
    versions = registry.versions()
    if not versions:
        return f"{registry.name}: no registered versions"
    lines = [f"{'version':>7}  {'aliases':<30} {'accuracy':>8}  {'git commit':<10}  run"]
    for v in versions:
        lines.append(
            f"{v.version:>7}  {','.join(v.aliases) or '-':<30} "
            f"{v.tags.get('test.accuracy', '-'):>8}  {v.tags.get('git.commit', '-')[:10]:<10}  "
            f"{v.run_id}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Run one registry command.

    Args:
        argv: Command-line arguments (defaults to ``sys.argv[1:]``).
    """
    args = _parser().parse_args(argv)
    name = args.name or (
        load_params(PARAMS_FILE).register.model_name
        if PARAMS_FILE.exists()
        else RegisterParams().model_name
    )
    tracking.connect()
    try:
        _run(args.command, args, Registry(name))
    except MlflowException as err:
        raise PipelineError(f"{name}: {err.message}") from None


def _run(command: str, args: argparse.Namespace, registry: Registry) -> None:
    name = registry.name
    if command == "list":
        print(format_versions(registry))
    elif command == "reproduce":
        digests = reproduce(registry, args.version, args.repo)
        differing = digests.differing()
        verdict = (
            f"{name} v{args.version}: the rebuild from its commit matches"
            if not differing
            else f"{name} v{args.version}: digests differ: {', '.join(differing)}"
        )
        print("\n".join([verdict, *digests.lines()]))
        if differing:
            sys.exit(1)
    elif command == "promote":
        old = registry.promote(args.version)
        before = f" (was v{old.version}, now alias previous)" if old else ""
        print(f"{name}: v{args.version} is {PRODUCTION}{before}")
    else:
        from_version, to_version = registry.rollback()
        print(f"{name}: {PRODUCTION} rolled back from v{from_version} to v{to_version}")


def entry() -> None:
    """Console-script entry point with one-line errors."""
    run_stage(main, "mnist-registry")


if __name__ == "__main__":
    entry()
