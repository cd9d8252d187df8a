"""Benchmark the DVC remote: push and pull sizes and times, and the way to a first prediction.

Against a real S3 API (``moto_server`` on loopback, started here), with the committed project:

1. ``push``: a clone of HEAD whose outputs come from this checkout's cache runs
   ``mnist remote push`` (data, models, run-cache and its git-tracked outputs) to an empty bucket;
2. ``pull``: a fresh clone (empty cache) runs ``make remote``, ``make pull`` and ``make serve``
   until the first prediction answers;
3. ``repro``: another fresh clone runs ``make repro`` (fetch and full training) and ``make serve``
   until the first prediction answers.

Every clone uses this checkout's ``.venv`` (the venv's install is left out of both ways). Loopback
S3 has no network latency: the pull figure is a lower bound for a real bucket. Writes
``reports/bench_remote.json``; the README's table is rendered from it (``make docs``).

Usage: ``make bench-remote`` (about 6 minutes on 2 cores: it trains the full model once).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.project_repo import user_clone  # noqa: E402 - the same clone a test makes
from tests.support.servers import S3, s3_server, serve_and_predict  # noqa: E402


def sh(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    """Run ``cmd``; return its wall seconds (exit on failure with its output)."""
    started = time.perf_counter()
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"bench: {' '.join(cmd)} failed:\n{result.stderr[-2000:]}")
    return time.perf_counter() - started


def bucket_bytes(s3: S3) -> tuple[int, int]:
    """Objects and bytes in the bucket."""
    pages = s3.client().get_paginator("list_objects_v2").paginate(Bucket=s3.bucket)
    sizes = [o["Size"] for page in pages for o in page.get("Contents", [])]
    return len(sizes), sum(sizes)


def first_prediction(clone: Path, steps: list[list[str]], env: dict[str, str]) -> dict[str, Any]:
    """Seconds of each step (named by its first two words), to a first answer, and in all."""
    timings = {" ".join(step[:2]): round(sh(step, clone, env), 1) for step in steps}
    started = time.perf_counter()
    serve_and_predict(clone)
    timings["make serve + first prediction"] = round(time.perf_counter() - started, 1)
    return {"steps": timings, "total_s": round(sum(timings.values()), 1)}


def main() -> None:
    """Measure, then write ``reports/bench_remote.json``."""
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    base_env = {k: v for k, v in os.environ.items() if k not in {"DVC_ROOT", "MLFLOW_TRACKING_URI"}}
    with tempfile.TemporaryDirectory(prefix="bench-remote-") as tmp, s3_server(Path(tmp)) as s3:
        env = {**base_env, **s3.env(), "DVC_NO_ANALYTICS": "1"}
        remote = ["make", "remote", f"URL=s3://{s3.bucket}/store", f"ENDPOINT={s3.endpoint}"]

        pusher = user_clone(ROOT, Path(tmp) / "pusher")
        sh([".venv/bin/dvc", "cache", "dir", "--local", str(ROOT / ".dvc/cache")], pusher, env)
        sh([".venv/bin/dvc", "checkout"], pusher, env)
        sh(remote, pusher, env)
        push_s = sh(["make", "push"], pusher, env)
        objects, pushed = bucket_bytes(s3)

        puller = user_clone(ROOT, Path(tmp) / "puller")
        pull = first_prediction(puller, [remote, ["make", "pull"]], env)
        pulled = sum(f.stat().st_size for f in (puller / ".dvc/cache").rglob("*") if f.is_file())

        builder = user_clone(ROOT, Path(tmp) / "builder")
        repro = first_prediction(builder, [["make", "repro"]], env)

    report = {
        "machine": {"cores": os.cpu_count(), "platform": platform.platform()},
        "commit": commit,
        "started_at": time.strftime("%Y-%m-%d", time.gmtime()),
        "push": {"seconds": round(push_s, 1), "objects": objects, "bytes": pushed},
        "pull": {**pull, "bytes": pulled},
        "repro": repro,
    }
    out = ROOT / "reports/bench_remote.json"
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
