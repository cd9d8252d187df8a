"""``mnist registry``: list, promote, roll back, rebuild and judge registered versions."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mnist_pipeline.commands._base import NEGATIVE, TOO_LITTLE_DATA, emit, one_line_errors
from mnist_pipeline.commands.events import (
    EVENTS_DEFAULT,
    PREFIX_DEFAULT,
    EventsOption,
    PrefixOption,
)

if TYPE_CHECKING:
    from mnist_pipeline.ops.registry_cli import Events

app = typer.Typer(
    help="The registered model versions: list, promote, roll back, rebuild, judge in shadow.",
    epilog="Example: mnist registry promote 3",
    no_args_is_help=True,
)
NameOption = Annotated[
    str | None,
    typer.Option("--name", help="registered model name", show_default="register.model_name"),
]
LastOption = Annotated[int, typer.Option("--last", help="the latest N events")]


def _events(source: str, prefix: str, last: int) -> Events:
    from mnist_pipeline.ops.registry_cli import Events

    return Events(source, prefix, last)


@app.command("list", epilog="Example: mnist registry list --json")
def list_versions(
    name: NameOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Every registered version, newest first, with its aliases, test accuracy and commit."""
    with one_line_errors("registry list"):
        from mnist_pipeline.ops.registry_cli import format_versions, named_errors, open_registry

        registry = open_registry(name)
        with named_errors(registry):
            versions = registry.versions()
            data = {
                "name": registry.name,
                "versions": [
                    {"version": v.version, "aliases": v.aliases, "run_id": v.run_id,
                     "test_accuracy": v.tags.get("test.accuracy"),
                     "git_commit": v.tags.get("git.commit")}
                    for v in versions
                ],
            }  # fmt: skip
            emit(as_json, data, format_versions(registry))


@app.command(epilog="Example: mnist registry promote 3")
def promote(
    version: Annotated[str, typer.Argument(help="the registered version")],
    name: NameOption = None,
    events: EventsOption = EVENTS_DEFAULT,
    events_prefix: PrefixOption = PREFIX_DEFAULT,
    last: LastOption = 1000,
) -> None:
    """Make VERSION production.

    When register.shadow_min_events > 0, only after a passing shadow report.
    """
    with one_line_errors("registry promote"):
        from mnist_pipeline.ops import registry_cli

        registry = registry_cli.open_registry(name)
        said = registry_cli.promote(registry, version, _events(events, events_prefix, last))
        print("\n".join(said))


@app.command(epilog="Example: mnist registry rollback")
def rollback(name: NameOption = None) -> None:
    """Move production back to the previous version."""
    with one_line_errors("registry rollback"):
        from mnist_pipeline.ops.registry_cli import named_errors, open_registry
        from mnist_pipeline.registry import PRODUCTION

        registry = open_registry(name)
        with named_errors(registry):
            from_version, to_version = registry.rollback()
        print(f"{registry.name}: {PRODUCTION} rolled back from v{from_version} to v{to_version}")


@app.command(epilog="Example: mnist registry reproduce 1 --json")
def reproduce(
    version: Annotated[str, typer.Argument(help="the registered version")],
    repo: Annotated[Path, typer.Option("--repo", help="the git repository")] = Path(),
    name: NameOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Rebuild VERSION from its git commit and compare the digests.

    Exit 0 if the recorded, stored and rebuilt digests agree, 1 naming the ones that differ.
    """
    with one_line_errors("registry reproduce"):
        from mnist_pipeline.ops.registry_cli import named_errors, open_registry
        from mnist_pipeline.ops.reproduce import reproduce as rebuild

        registry = open_registry(name)
        with named_errors(registry):
            digests = rebuild(registry, version, repo)
        differing = digests.differing()
        verdict = (
            f"{registry.name} v{version}: the rebuild from its commit matches"
            if not differing
            else f"{registry.name} v{version}: digests differ: {', '.join(differing)}"
        )
        data = {"name": registry.name, "version": version, "differing": differing,
                "digests": digests.lines()}  # fmt: skip
        emit(as_json, data, "\n".join([verdict, *digests.lines()]))
    if differing:
        raise typer.Exit(NEGATIVE)


@app.command("shadow-report", epilog="Example: mnist registry shadow-report --json")
def shadow_report(
    version: Annotated[
        str | None,
        typer.Option("--version", help="registered version", show_default="the candidate"),
    ] = None,
    name: NameOption = None,
    events: EventsOption = EVENTS_DEFAULT,
    events_prefix: PrefixOption = PREFIX_DEFAULT,
    last: LastOption = 1000,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """How the candidate answered live inputs beside production.

    Exit 0 it may be promoted, 1 blocked (it disagrees too often), 3 too few shadow events.
    """
    with one_line_errors("registry shadow-report"):
        from mnist_pipeline.ops import registry_cli

        registry = registry_cli.open_registry(name)
        params = registry_cli.register_params()
        with registry_cli.named_errors(registry):
            chosen = version or registry_cli.candidate_version(registry)
            result = registry_cli.shadow_result(
                registry, chosen, _events(events, events_prefix, last)
            )
        min_events = max(params.shadow_min_events, 1)
        passed, reason = result.verdict(min_events, params.shadow_max_disagreement)
        data = {**result.as_dict(), "version": chosen, "passed": passed, "verdict": reason}
        text = "\n".join([f"{registry.name} v{chosen} in shadow", *result.lines(), reason])
        emit(as_json, data, text)
    if not passed:
        raise typer.Exit(TOO_LITTLE_DATA if result.events < min_events else NEGATIVE)
