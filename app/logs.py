"""JSON-lines logging for the service: one object per line, with the request id when known."""

from __future__ import annotations

import json
import logging
import sys
import time

from flask import g, has_request_context


class JsonFormatter(logging.Formatter):
    """Render a record as one JSON object."""

    def format(self, record: logging.LogRecord) -> str:
        """Format ``record`` as JSON, adding ``request_id`` and any ``extra`` fields."""
        entry: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,  # which Gunicorn worker: several share one log
        }
        if has_request_context() and "request_id" in g:
            entry["request_id"] = g.request_id
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure(level: str = "INFO") -> None:
    """Send every log record to stderr as JSON lines.

    Args:
        level: Root log level.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
