"""``mnist-registry``: the registered versions, promotion, rollback, rebuilds and shadow reports.

List versions, promote one, roll production back, rebuild one, or say how a candidate did in
shadow on live traffic. For the people who run production. Uses the same tracking store as the
pipeline (``MLFLOW_TRACKING_URI``, ``.env``, or the embedded store under the repository root).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from mlflow.exceptions import MlflowException

from mnist_contracts.tags import DIGEST_TAG
from mnist_pipeline import tracking
from mnist_pipeline.cli import run_stage
from mnist_pipeline.errors import PipelineError
from mnist_pipeline.ops.event_args import add_event_source
from mnist_pipeline.ops.reproduce import reproduce
from mnist_pipeline.params import PARAMS_FILE, RegisterParams, load_params
from mnist_pipeline.registry import CANDIDATE, PRODUCTION, Registry
from mnist_pipeline.shadow import ShadowResult, from_stream, load_candidate, replay

log = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mnist-registry", description=__doc__)
    parser.add_argument("--name", help="registered model name (default: register.model_name)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="versions with their aliases and test metrics")
    promote = commands.add_parser(
        "promote",
        help="make VERSION production (after a passing shadow report when "
        "register.shadow_min_events > 0)",
    )
    promote.add_argument("version")
    _events_arguments(promote)
    shadow = commands.add_parser(
        "shadow-report",
        help="how the candidate answered live inputs beside production; exit 1 when blocked",
    )
    shadow.add_argument("--version", help="registered version (default: the candidate alias)")
    shadow.add_argument("--json", action="store_true", help="print JSON instead of text")
    _events_arguments(shadow)
    commands.add_parser("rollback", help="move production back to the previous version")
    again = commands.add_parser(
        "reproduce",
        help="rebuild VERSION from its git commit; exit 0 if the recorded, stored and rebuilt "
        "digests agree, 1 naming the ones that differ",
    )
    again.add_argument("version")
    again.add_argument("--repo", type=Path, default=Path(), help="git repository (default: .)")
    return parser


def _events_arguments(parser: argparse.ArgumentParser) -> None:
    add_event_source(parser)  # the stream: mnist-shadow's answers; the log: replayed
    parser.add_argument("--last", type=int, default=1000, help="latest N events (default 1000)")


def shadow_result(registry: Registry, version: str, args: argparse.Namespace) -> ShadowResult:
    """The shadow evidence for ``version``: mnist-shadow's answers, or a replay of the log."""
    info = registry.get(version)
    if str(args.events).startswith(("redis://", "rediss://", "unix://")):
        digest = info.tags.get(DIGEST_TAG)
        return from_stream(args.events, args.events_prefix, digest, args.last)
    candidate = load_candidate(f"models:/{registry.name}/{version}")
    return replay(Path(args.events), candidate, args.last)


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


def _register_params() -> RegisterParams:
    return load_params(PARAMS_FILE).register if PARAMS_FILE.exists() else RegisterParams()


def _candidate_version(registry: Registry) -> str:
    candidate = registry.alias(CANDIDATE)
    if candidate is None:
        raise PipelineError(
            f"{registry.name}: no version has the {CANDIDATE} alias; pass --version"
        )
    return candidate.version


def main(argv: list[str] | None = None) -> None:
    """Run one registry command.

    Args:
        argv: Command-line arguments (defaults to ``sys.argv[1:]``).
    """
    args = _parser().parse_args(argv)
    name = args.name or _register_params().model_name
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
    elif command == "shadow-report":
        params = _register_params()
        version = args.version or _candidate_version(registry)
        result = shadow_result(registry, version, args)
        passed, reason = result.verdict(
            max(params.shadow_min_events, 1), params.shadow_max_disagreement
        )
        if args.json:
            print(json.dumps({**result.as_dict(), "version": version, "passed": passed,
                              "verdict": reason}, indent=2))  # fmt: skip
        else:
            print("\n".join([f"{name} v{version} in shadow", *result.lines(), reason]))
        if not passed:
            sys.exit(1)
    elif command == "promote":
        params = _register_params()
        if params.shadow_min_events > 0:
            result = shadow_result(registry, args.version, args)
            passed, reason = result.verdict(
                params.shadow_min_events, params.shadow_max_disagreement
            )
            if not passed:
                raise PipelineError(
                    f"{name} v{args.version} not promoted: shadow evaluation {reason}; "
                    "run mnist-shadow longer or lower register.shadow_min_events"
                )
            print(f"{name} v{args.version} shadow evaluation {reason}")
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
