"""The ``--events`` and ``--events-prefix`` options of every tool that reads prediction events."""

from __future__ import annotations

import argparse
import os

from mnist_contracts import paths
from mnist_contracts.events import DEFAULT_PREFIX


def add_event_source(parser: argparse.ArgumentParser, *aliases: str) -> None:
    """Add ``--events`` (a ``redis://`` URL or the embedded log's path) and ``--events-prefix``.

    Both default to the service's own settings (``EVENTS_URL``, ``EVENTS_PREFIX``), so a tool run
    beside the service reads what it writes; without ``EVENTS_URL``, the embedded log.

    Args:
        parser: The tool's parser.
        aliases: Older names of ``--events`` (``--log``).
    """
    parser.add_argument(
        "--events",
        *aliases,
        default=os.environ.get("EVENTS_URL") or str(paths.PREDICTION_LOG),
        help="the event stream's redis:// URL or the prediction log's path "
        "(default: $EVENTS_URL, else the embedded log)",
    )
    parser.add_argument("--events-prefix", default=os.environ.get("EVENTS_PREFIX", DEFAULT_PREFIX))
