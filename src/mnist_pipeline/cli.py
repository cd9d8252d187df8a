"""How a stage runs from the command line: logging set up, one-line errors, exit codes.

Each stage module ends with ``run_stage(main)``; ``mnist stage NAME`` runs any of them as
``dvc.yaml`` does. The exit codes are ``mnist``'s (:mod:`mnist_pipeline.commands._base`): 2 an
error the user can act on, in one line; 130 interrupted.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from mnist_contracts import paths
from mnist_pipeline.errors import PipelineError

STAGES = tuple(paths.STAGES)
ERROR, INTERRUPTED = 2, 130

log = logging.getLogger("mnist_pipeline")


def actionable(err: BaseException) -> str | None:
    """The one line a user can act on for ``err``, or None when it is a bug (keep its traceback).

    ``PipelineError`` is the project's own; MLflow's errors (a tracking server or its database
    down mid-run, a refused request) are the user's to act on too. mlflow is not imported for
    that: code that never loaded it cannot raise its errors.

    Args:
        err: The exception a command or stage ended with.

    Returns:
        The message, or None.
    """
    if isinstance(err, PipelineError):
        return str(err)
    mlflow_errors = sys.modules.get("mlflow.exceptions")
    if mlflow_errors is None or not isinstance(err, mlflow_errors.MlflowException):
        return None
    first = str(getattr(err, "message", err)).strip().splitlines()[0][:300]
    return (
        f"MLflow request failed: {first}; check the tracking server (MLFLOW_TRACKING_URI) and "
        "its database, then run the same command again"
    )


def run_stage(main: Callable[[], object], name: str) -> None:
    """Run a stage's ``main``; a failure the user can act on is one line and exit 2.

    Args:
        main: The stage's entry point.
        name: Stage name, prefixed to the error line.
    """
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        main()
    except KeyboardInterrupt:
        print(f"{name}: interrupted; nothing was written", file=sys.stderr)
        sys.exit(INTERRUPTED)
    except Exception as err:
        message = actionable(err)
        if message is None:
            raise
        print(f"{name}: error: {message}", file=sys.stderr)
        sys.exit(ERROR)
