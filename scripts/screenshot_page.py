"""Screenshot the draw-a-digit page for the README: the real service on ``models/mnist``.

Starts Gunicorn on a free loopback port, opens ``/`` in the machine's headless Chromium
(tests/support/browser.py), draws a 7 with the mouse, waits for the answer and writes
``docs/images/draw-a-digit.png``. Usage: ``make screenshot`` (after ``make repro``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.browser import find_chromium, launch_args  # noqa: E402
from tests.support.servers import free_port  # noqa: E402

OUT = ROOT / "docs/images/draw-a-digit.png"
SEVEN = [[(0.25, 0.22), (0.72, 0.22), (0.45, 0.85)]]


def main() -> None:
    """Serve, draw, screenshot."""
    from playwright.sync_api import sync_playwright

    executable = find_chromium()
    if executable is None:
        raise SystemExit("screenshot: no Chromium or Chrome found; apt-get install chromium")
    if not (ROOT / "models/mnist/saved_model.pb").is_file():
        raise SystemExit("screenshot: no models/mnist; run `make repro` first")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="screenshot-") as tmp:
        env = {**os.environ, "BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": "1",
               "PROMETHEUS_MULTIPROC_DIR": tmp, "PREDICTION_LOG": f"{tmp}/p.db",
               "STATE_DIR": f"{tmp}/state", "LOG_LEVEL": "WARNING"}  # fmt: skip
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "gunicorn"), "-c", "gunicorn.conf.py"],
            cwd=ROOT, env=env,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(240):
                try:
                    if requests.get(url + "/health/ready", timeout=2).ok:
                        break
                except requests.RequestException:
                    pass
                time.sleep(0.5)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=executable, args=launch_args())
                page = browser.new_page(viewport={"width": 1000, "height": 760})
                page.goto(url + "/")
                page.wait_for_function(
                    "document.querySelector('#model').textContent.includes('accuracy')"
                )
                box = page.locator("#pad").bounding_box()
                for points in SEVEN:
                    xy = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"])
                          for fx, fy in points]  # fmt: skip
                    page.mouse.move(*xy[0])
                    page.mouse.down()
                    for x, y in xy[1:]:
                        page.mouse.move(x, y, steps=12)
                    page.mouse.up()
                page.click("#predict")
                page.wait_for_function("document.querySelector('#digit').textContent !== '-'")
                OUT.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(OUT))
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=60)
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
