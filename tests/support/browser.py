"""A real browser for the page tests: a Chromium already on the machine, driven by Playwright.

Never downloads one (``playwright install`` is not used): Debian's ``chromium`` (``.ci/run``
installs it where no Chromium or Chrome is found), or Google Chrome on GitHub's runners.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

CANDIDATES = ("chromium", "google-chrome", "google-chrome-stable", "chromium-browser")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


def find_chromium() -> str | None:
    """The browser to drive: ``$CHROMIUM_PATH``, else the first candidate on ``PATH``."""
    given = os.environ.get("CHROMIUM_PATH")
    if given:
        return given
    return next((found for name in CANDIDATES if (found := shutil.which(name))), None)


def launch_args() -> list[str]:
    """Chromium's sandbox cannot start as root (this project's CI machines run as root)."""
    return ["--no-sandbox"] if os.geteuid() == 0 else []
