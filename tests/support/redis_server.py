"""A real, throwaway ``redis-server`` on a free loopback port (Debian's, installed by .ci/run)."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.support.servers import free_port
from tests.support.waiting import wait_until


class RedisServer:
    """One server that a test can stop and start again on the same port (a broker outage)."""

    def __init__(self, directory: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("no redis-server: apt-get install redis-server (.ci/run does)")
        self.binary, self.directory, self.port = binary, directory, free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start (or restart) the server and wait until it answers."""
        self.directory.mkdir(parents=True, exist_ok=True)
        log = (self.directory / "redis.log").open("ab")
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.directory)],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        client, process = redis.Redis.from_url(self.url), self.process
        try:
            wait_until(client.ping, 20, interval=0.05, what=f"redis on port {self.port}",
                       alive=lambda: process.poll() is None)  # fmt: skip
        except TimeoutError:
            raise RuntimeError((self.directory / "redis.log").read_text()) from None

    def stop(self) -> None:
        """Stop the server (its data goes with it: no persistence)."""
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None

    def client(self) -> redis.Redis:
        """A client of this server."""
        return redis.Redis.from_url(self.url)


@contextlib.contextmanager
def redis_server(directory: Path) -> Iterator[RedisServer]:
    """A running server, stopped afterwards.

    Redis cannot bind port 0 and say what it got: a port picked free may be taken before the
    server binds it (another xdist worker, any process), so a failed start tries a new port.
    """
    for attempt in range(3):
        server = RedisServer(directory / str(attempt))
        try:
            server.start()
            break
        except RuntimeError:
            server.stop()
            if attempt == 2:
                raise
    try:
        yield server
    finally:
        server.stop()
