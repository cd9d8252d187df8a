"""Measure what a working copy takes on disk after ``make repro`` (``make bench-disk``).

``.venv`` (the locked environment with compiled bytecode), and the DVC side: ``data/``,
``models/`` and ``.dvc/cache`` (DVC links or copies the cache into the workspace; ``du`` counts
hard-linked files once). Writes ``reports/disk.json``; the README's requirements read it.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def gigabytes(*paths: str) -> float:
    """Disk use of ``paths`` together (``du -scb``; a hard link counted once)."""
    present = [p for p in paths if (ROOT / p).exists()]
    if not present:
        raise SystemExit(f"bench-disk: none of {', '.join(paths)} exists: run make repro first")
    out = subprocess.run(["du", "-scb", *present], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    return round(int(out.splitlines()[-1].split()[0]) / 1e9, 2)


def main() -> int:
    """Measure and write ``reports/disk.json``."""
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout.strip()  # fmt: skip
    report = {
        "machine": {"cores": os.cpu_count(), "platform": platform.platform()},
        "commit": commit,
        "venv_gb": gigabytes(".venv"),
        "dvc_gb": gigabytes("data", "models", ".dvc/cache"),
    }
    (ROOT / "reports/disk.json").write_text(json.dumps(report, indent=1) + "\n")
    print(f"bench-disk: .venv {report['venv_gb']} GB, DVC {report['dvc_gb']} GB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
