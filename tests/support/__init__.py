"""What the tests share: real servers, waiting, images, the browser, tiny data, project copies.

Plain modules imported by the tests (and by the benchmark scripts that run the same servers),
never a ``conftest.py`` imported as a module.
"""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
