"""The options of every command that reads prediction events: where, which stream, how many."""

from __future__ import annotations

from typing import Annotated

import typer

from mnist_contracts import paths
from mnist_contracts.event_store import DEFAULT_PREFIX

EventsOption = Annotated[
    str,
    typer.Option(
        "--events",
        envvar="EVENTS_URL",
        help="the event stream's redis:// URL, or the embedded prediction log's path",
        show_default=str(paths.PREDICTION_LOG),
    ),
]
PrefixOption = Annotated[
    str, typer.Option("--events-prefix", envvar="EVENTS_PREFIX", help="the stream's key prefix")
]
EVENTS_DEFAULT = str(paths.PREDICTION_LOG)
PREFIX_DEFAULT = DEFAULT_PREFIX
