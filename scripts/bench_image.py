"""Benchmark the service images: their size, what takes the space, and how fast they are ready.

Builds the images with ``make image`` (the model baked in from ``models/mnist``), then measures,
for the service image and for the slim one (``--target slim``: TFLite int8 through LiteRT):

1. the image's size, and its layers (``docker history``) largest first;
2. the largest installed packages in the image's virtual environment (``du`` inside it);
3. seconds from ``docker run`` to ``/health/ready`` answering 200, read-only, as uid 1000;
4. each worker's resident memory once ready (``/proc`` inside the container).

Writes ``reports/bench_image.json`` (the slim image's figures under ``slim``).
Usage: ``make bench-image`` (needs a Docker engine).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.containers import gunicorn_rss_kb, wait_ready  # noqa: E402
from tests.support.servers import free_port  # noqa: E402 - the tests' own loopback port picker

IMAGE = "mnist-api:bench"
SLIM_IMAGE = "mnist-api:bench-slim"
SITE = "/opt/venv/lib/python3.11/site-packages"


def run(*cmd: str) -> str:
    """Run ``cmd``; return stdout (exit with its stderr on failure)."""
    result = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=ROOT)
    if result.returncode != 0:
        raise SystemExit(f"bench: {' '.join(cmd)} failed:\n{result.stderr[-2000:]}")
    return result.stdout.strip()


def layers(image: str = IMAGE) -> list[dict[str, Any]]:
    """The image's non-empty layers, largest first, with the instruction that made each."""
    rows = [
        json.loads(line)
        for line in run(
            "docker", "history", "--no-trunc", "--human=false", "--format", "{{json .}}", image
        ).splitlines()
    ]
    sized = [
        {"mb": round(int(r["Size"]) / 1e6, 1), "created_by": " ".join(r["CreatedBy"].split())[:160]}
        for r in rows
        if int(r["Size"]) > 0
    ]
    return sorted(sized, key=lambda r: r["mb"], reverse=True)


def packages(image: str = IMAGE, top: int = 12) -> list[dict[str, Any]]:
    """The largest directories of the image's site-packages."""
    out = run(
        "docker",
        "run",
        "--rm",
        "--entrypoint",
        "sh",
        image,
        "-c",
        f"du -sk {SITE}/* | sort -rn | head -n {top}",
    )
    rows = []
    for line in out.splitlines():
        kb, path = line.split(maxsplit=1)
        rows.append({"package": Path(path).name, "mb": round(int(kb) / 1024, 1)})
    return rows


def ready_and_rss(image: str = IMAGE) -> dict[str, Any]:
    """Seconds from ``docker run`` to ready, and the workers' resident memory."""
    port = free_port()
    name = f"mnist-bench-{port}"
    started = time.monotonic()
    run(
        "docker", "run", "-d", "--name", name, "--read-only", "--tmpfs", "/tmp",  # noqa: S108 - the container's own /tmp
        "--tmpfs", "/var/lib/mnist:uid=1000,gid=1000", "-p", f"127.0.0.1:{port}:8000", image,
    )  # fmt: skip
    try:
        try:
            ready_s = wait_ready(f"http://127.0.0.1:{port}", started, 180, lambda: True)
        except TimeoutError as err:
            raise SystemExit(f"bench: {err}") from None
        time.sleep(3)  # the second worker finishes its warm-up
        processes = gunicorn_rss_kb(name)
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
    return {
        "ready_s": round(ready_s, 1),
        "rss_mb": {
            "master": round(processes[0][1] / 1024, 1),
            "workers": [round(kb / 1024, 1) for _, kb in processes[1:]],
        },
    }


def main() -> None:
    """Build, measure, write ``reports/bench_image.json``."""
    built = time.perf_counter()
    run("make", "image", f"IMAGE={IMAGE}", f"SLIM_IMAGE={SLIM_IMAGE}")
    build_s = time.perf_counter() - built
    inspect = json.loads(run("docker", "image", "inspect", IMAGE))[0]
    commit = run("git", "rev-parse", "--short", "HEAD")
    report = {
        "machine": {"cores": os.cpu_count(), "platform": platform.platform()},
        "commit": commit,
        "base_image": run("bash", "docker/base-image.sh"),
        "build_s_with_cached_base_and_wheels": round(build_s, 1),
        "image_mb": round(int(inspect["Size"]) / 1e6, 1),
        "layers": layers(),
        "largest_packages": packages(),
        **ready_and_rss(),
        "slim": {
            "image": "docker build --target slim (MODEL_VARIANT=tflite-int8, LiteRT)",
            "image_mb": round(int(json.loads(run("docker", "image", "inspect", SLIM_IMAGE))[0]
                                  ["Size"]) / 1e6, 1),
            "layers": layers(SLIM_IMAGE),
            "largest_packages": packages(SLIM_IMAGE),
            **ready_and_rss(SLIM_IMAGE),
        },
    }  # fmt: skip
    out = ROOT / "reports" / "bench_image.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    keys = ("image_mb", "ready_s", "rss_mb")
    print(json.dumps({k: report[k] for k in keys} | {"slim": {k: report["slim"][k] for k in keys}}))


if __name__ == "__main__":
    main()
