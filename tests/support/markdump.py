"""A pytest plugin that writes every collected test's marks to ``$MARKDUMP`` as JSON.

Used by the harness's own test to check which tier selects which test, from one collection.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest


def pytest_collection_finish(session: pytest.Session) -> None:
    """Write ``{node id: [mark names]}`` for every collected item."""
    target = os.environ.get("MARKDUMP")
    if target:
        marks = {
            item.nodeid: sorted({m.name for m in item.iter_markers()}) for item in session.items
        }
        Path(target).write_text(json.dumps(marks))
