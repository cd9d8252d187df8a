"""Smoke-test a deployed prediction service: ready, a real prediction, and the model it serves.

The deploy workflow runs it after ``kubectl rollout status``; a failure there rolls the
deployment back (``kubectl rollout undo``). Standard library only, so a bare runner can run it::

    python scripts/smoke_test.py https://mnist.staging.example.com [--digest sha256:...]
        [--api-key KEY] [--timeout 120]

Checks, in order:

1. ``/health/ready`` answers 200 within ``--timeout`` seconds (the rollout may still be warming);
2. ``POST /predict`` with a drawn one (a vertical stroke, as the page sends it) answers 200 with
   ten probabilities summing to 1, and its class is 1;
3. ``/metadata`` names the served model by its digest (``sha256:...``), equal to ``--digest``
   when given (the version the environment should serve).

Exit 0 when all hold; 1 with one line naming the first that failed.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import urllib.error
import urllib.request
from typing import Any

DIGEST = re.compile(r"^sha256:[0-9a-f]{12,64}$")


class SmokeError(RuntimeError):
    """A check that failed; the message is the one line the deploy log shows."""


def drawn_one() -> list[list[int]]:
    """A 28x28 image of a one: a vertical stroke three pixels wide, centred as MNIST's are."""
    return [[255 if 5 <= row < 23 and 13 <= col < 16 else 0 for col in range(28)]
            for row in range(28)]  # fmt: skip


def call(url: str, body: dict[str, Any] | None = None, api_key: str | None = None,
         timeout: float = 10) -> tuple[int, Any]:  # fmt: skip
    """``GET`` (or ``POST`` ``body`` as JSON) ``url``; return the status and the decoded JSON."""
    data = None if body is None else json.dumps(body).encode()
    method = "GET" if body is None else "POST"
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - http(s) only
    request.add_header("Content-Type", "application/json")
    if api_key:
        request.add_header("X-API-Key", api_key)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - http(s)
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, None


def smoke(base: str, digest: str | None = None, api_key: str | None = None,
          timeout: float = 120) -> dict[str, Any]:  # fmt: skip
    """Run the three checks against ``base``; return what was served.

    Raises:
        SmokeError: The first check that failed.
    """
    base = base.rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise SmokeError(f"{base!r} is not an http(s) URL")
    deadline = time.monotonic() + timeout
    while True:
        try:
            status, _ = call(f"{base}/health/ready")
        except (OSError, ValueError) as err:
            status, reason = 0, str(err)
        else:
            reason = f"HTTP {status}"
        if status == 200:
            break
        if time.monotonic() > deadline:
            raise SmokeError(f"{base}/health/ready not ready after {timeout:.0f} s ({reason})")
        time.sleep(2)
    try:
        status, answer = call(f"{base}/predict", {"image": drawn_one()}, api_key)
    except (OSError, ValueError) as err:
        raise SmokeError(f"POST {base}/predict failed: {err}") from None
    if status != 200:
        raise SmokeError(f"POST {base}/predict answered HTTP {status}")
    prediction = answer["predictions"][0]
    probabilities = prediction["probabilities"]
    if len(probabilities) != 10 or abs(sum(probabilities) - 1) > 1e-3:
        raise SmokeError(f"POST {base}/predict: not 10 probabilities summing to 1: {probabilities}")
    if prediction["predicted_class"] != 1:
        read = prediction["predicted_class"]
        raise SmokeError(f"POST {base}/predict: a drawn one was read as {read}")
    status, metadata = call(f"{base}/metadata", api_key=api_key)
    served = (metadata or {}).get("model_version", "")
    if status != 200 or not DIGEST.match(served):
        raise SmokeError(f"{base}/metadata names no model digest (HTTP {status}: {served!r})")
    if digest and served != digest:
        raise SmokeError(f"{base} serves {served}, not the expected {digest}")
    return {"model_version": served, "git_commit": metadata.get("git_commit"),
            "registry_version": metadata.get("registry_version")}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Run the smoke test named on the command line; exit 1 with one line on a failed check."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="the service's base URL")
    parser.add_argument("--digest", help="the model digest the service must serve")
    parser.add_argument("--api-key", help="X-API-Key, when the service requires one")
    parser.add_argument("--timeout", type=float, default=120, help="seconds to wait for ready")
    args = parser.parse_args(argv)
    try:
        served = smoke(args.url, args.digest, args.api_key, args.timeout)
    except SmokeError as err:
        print(f"smoke: FAILED: {err}", file=sys.stderr)
        return 1
    print(f"smoke: ok: {args.url} serves {json.dumps(served)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
