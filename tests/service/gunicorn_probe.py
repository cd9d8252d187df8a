"""The service's ``gunicorn.conf.py`` plus one hook: after every request, each worker appends its
pid and whether ``tensorflow`` is in its ``sys.modules`` to the file ``$MODULES_PROBE``.

The variant tests run Gunicorn with this file (``-c``) to see inside real workers.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

_CONF = Path(__file__).resolve().parents[2] / "gunicorn.conf.py"
_spec = importlib.util.spec_from_file_location("service_gunicorn_conf", _CONF)
assert _spec is not None and _spec.loader is not None  # noqa: PT018 - a config file
_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_module)
globals().update({k: v for k, v in vars(_module).items() if not k.startswith("_")})


def post_request(worker: Any, req: Any, environ: Any, resp: Any) -> None:
    """Record this worker's imports as they stand after the request."""
    with Path(os.environ["MODULES_PROBE"]).open("a", encoding="utf-8") as probe:
        probe.write(f"{os.getpid()} {int('tensorflow' in sys.modules)}\n")
