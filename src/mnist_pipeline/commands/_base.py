"""What every ``mnist`` sub-command shares: exit codes, one-line errors, output.

The exit codes are documented once, in the README's table ("The `mnist` command"): 0 done,
1 a negative verdict (only from a check), 2 an error in one line, 3 too little data to decide,
130 interrupted. tests/unit/test_mnist_command.py holds the README to these constants.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from typing import Any, NoReturn

import typer

from mnist_pipeline.cli import ERROR, INTERRUPTED, actionable

OK, NEGATIVE, TOO_LITTLE_DATA = 0, 1, 3
__all__ = [
    "ERROR",
    "INTERRUPTED",
    "NEGATIVE",
    "OK",
    "TOO_LITTLE_DATA",
    "emit",
    "fail",
    "one_line_errors",
]


def fail(command: str, message: str) -> NoReturn:
    """Print ``mnist COMMAND: error: MESSAGE`` on stderr and exit with :data:`ERROR`.

    Args:
        command: The sub-command, as typed (``registry promote``).
        message: What was wrong and what to do, in one line.
    """
    print(f"mnist {command}: error: {message}", file=sys.stderr)
    raise typer.Exit(ERROR)


@contextlib.contextmanager
def one_line_errors(command: str) -> Iterator[None]:
    """Turn the failures a user can act on into one line and exit 2 (130 when interrupted).

    What counts as actionable is :func:`mnist_pipeline.cli.actionable`, shared with the stages;
    anything else is a bug and keeps its traceback.

    Args:
        command: The sub-command, for the error line.
    """
    try:
        yield
    except KeyboardInterrupt:
        print(f"mnist {command}: interrupted; nothing was written", file=sys.stderr)
        raise typer.Exit(INTERRUPTED) from None
    except Exception as err:
        message = actionable(err)
        if message is None:
            raise
        fail(command, message)


def emit(as_json: bool, data: dict[str, Any], text: str) -> None:
    """Print a result as JSON (``--json``) or as text for people.

    Args:
        as_json: Whether ``--json`` was given.
        data: The result, JSON-serialisable.
        text: The same result for a terminal.
    """
    print(json.dumps(data, indent=2, default=str) if as_json else text)
