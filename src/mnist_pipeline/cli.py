"""How a stage runs from the command line: logging set up, one-line errors, exit codes.

Each stage module ends with ``run_stage(main)``; ``mnist-pipeline STAGE`` runs any of them.
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Callable

from mnist_contracts import paths
from mnist_pipeline.errors import PipelineError

STAGES = tuple(paths.STAGES)

log = logging.getLogger("mnist_pipeline")


def run_stage(main: Callable[[], object], name: str) -> None:
    """Run a stage's ``main`` and turn failures the user can act on into one line and exit 1.

    Args:
        main: The stage's entry point.
        name: Stage name, prefixed to the error line.
    """
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        main()
    except PipelineError as err:
        print(f"{name}: error: {err}", file=sys.stderr)
        sys.exit(1)
    except Exception as err:
        # MLflow's errors (a tracking server or its database down mid-run, a refused request)
        # are the user's to act on too. mlflow is not imported for that: a stage that never
        # loaded it cannot raise its errors.
        mlflow_errors = sys.modules.get("mlflow.exceptions")
        if mlflow_errors is None or not isinstance(err, mlflow_errors.MlflowException):
            raise
        first = str(getattr(err, "message", err)).strip().splitlines()[0][:300]
        print(
            f"{name}: error: MLflow request failed: {first}; check the tracking server "
            "(MLFLOW_TRACKING_URI) and its database, then run the same command again",
            file=sys.stderr,
        )
        sys.exit(1)
    except KeyboardInterrupt:
        print(f"{name}: interrupted; nothing was written", file=sys.stderr)
        sys.exit(130)


def main(argv: list[str] | None = None) -> None:
    """Run one stage by name: ``mnist-pipeline {fetch,preprocess,train,evaluate}``.

    Args:
        argv: Command-line arguments (defaults to ``sys.argv[1:]``).
    """
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] not in STAGES:
        print(f"usage: mnist-pipeline {{{','.join(STAGES)}}}", file=sys.stderr)
        sys.exit(2)
    module = importlib.import_module(f"mnist_pipeline.stages.{args[0]}")
    run_stage(module.main, args[0])
