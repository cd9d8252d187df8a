"""Apps started and stopped as a Gunicorn worker starts and stops them (:mod:`app.lifecycle`)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask_openapi3.openapi import OpenAPI

    from app.settings import Settings

Serve = Callable[["Settings"], "OpenAPI"]  # the `serve` fixture of tests/conftest.py


@contextlib.contextmanager
def started(settings: Settings) -> Iterator[OpenAPI]:
    """``create_app(settings)``, started (model loaded, threads running); stopped on exit, which
    writes what its event sink holds, as a worker's exit does."""
    from app import create_app, lifecycle

    app = create_app(settings)
    lifecycle.start(app)
    try:
        yield app
    finally:
        lifecycle.stop(app)
