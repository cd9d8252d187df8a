"""One way to wait for another process: poll an observable condition until a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T | None],
    timeout: float,
    *,
    interval: float = 0.1,
    what: str = "the condition",
    alive: Callable[[], bool] | None = None,
) -> T:
    """Call ``predicate`` until it returns a true value; return that value.

    An exception from ``predicate`` counts as "not yet" (a server that is still starting refuses
    connections), and every miss sleeps ``interval``, so a probe that answers at once (a 503)
    does not spin.

    Args:
        predicate: The check; a true result ends the wait.
        timeout: Seconds before giving up.
        interval: Seconds between checks.
        what: Named in the error.
        alive: When given and it turns false (the awaited process died), stop at once.

    Raises:
        TimeoutError: ``predicate`` stayed false for ``timeout`` seconds, or ``alive()`` turned
            false; the last exception, if any, is its cause.
    """
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while True:
        try:
            result = predicate()
        except Exception as err:  # noqa: BLE001 - not ready yet; kept as the cause
            last, result = err, None
        if result:
            return result
        if alive is not None and not alive():
            raise TimeoutError(f"gave up waiting for {what}: the process exited") from last
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what} did not hold within {timeout:.0f} s") from last
        time.sleep(interval)
