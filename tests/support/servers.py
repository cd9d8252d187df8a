"""Real servers for the tests, on free loopback ports, stopped afterwards.

- S3: ``moto_server`` (``moto[server]``), with IAM authentication on, so wrong keys are refused.
- PostgreSQL: Debian's (or Ubuntu's) server binaries, a throwaway cluster in a temporary
  directory, run as the ``postgres`` user when the tests run as root.
- ``mlflow server`` on any backend store and artifact destination.
- :class:`CutProxy`: a TCP proxy that can drop every connection part-way through a transfer and
  refuse new ones until restored, i.e. a server that goes down in the middle of an operation.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.waiting import wait_until

BIN = Path(sys.executable).parent
REGION = "us-east-1"
# Gunicorn's master names the address it bound (BIND=127.0.0.1:0 lets the kernel pick the port).
GUNICORN_LISTENING = r"Listening at: http://127\.0\.0\.1:(\d+)"


def free_port() -> int:
    """A free TCP port on loopback, for a server that cannot bind port 0 and say what it got.

    Prefer :func:`bound_port` where the server can: a port picked here may be taken by another
    process before the server binds it.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bound_port(log: Path, pattern: str, process: subprocess.Popen[bytes], timeout: float) -> int:
    """The port a server bound to port 0 says it got, read from its log.

    Binding port 0 lets the kernel choose: two xdist workers never race for one port.

    Args:
        log: The server's log file.
        pattern: A regular expression whose first group is the port.
        process: The server, to stop waiting if it exits.
        timeout: Seconds to wait.
    """

    def found() -> int | None:
        match = re.search(pattern, log.read_text(errors="replace"))
        return int(match.group(1)) if match else None

    try:
        return wait_until(found, timeout, interval=0.2, what=f"{log.name} to name its port",
                          alive=lambda: process.poll() is None)  # fmt: skip
    except TimeoutError as err:
        pytest.fail(f"{err}:\n{log.read_text(errors='replace')[-3000:]}")


def wait_http_ok(
    url: str, process: subprocess.Popen[bytes], log: Path, timeout: float, what: str
) -> None:
    """Poll ``url`` until it answers 2xx; fail the test with the server's log if it never does.

    Args:
        url: What to GET (a health or readiness route).
        process: The server: its exit ends the wait at once.
        log: The server's log, shown on failure.
        timeout: Seconds to wait.
        what: The server, named in the failure.
    """
    try:
        wait_until(
            lambda: requests.get(url, timeout=2).ok, timeout, interval=0.3,
            what=f"{what} to answer {url}", alive=lambda: process.poll() is None,
        )  # fmt: skip
    except TimeoutError as err:
        pytest.fail(
            f"{what} did not become ready ({err}):\n{log.read_text(errors='replace')[-3000:]}"
        )


def stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate a server process and wait for it."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class S3:
    """A running S3 API with one user allowed everything, and one bucket."""

    endpoint: str
    key: str
    secret: str
    bucket: str
    process: subprocess.Popen[bytes]

    def env(self, secret: str | None = None) -> dict[str, str]:
        """The environment a client needs (``secret`` overrides the real one)."""
        return {
            "AWS_ACCESS_KEY_ID": self.key,
            "AWS_SECRET_ACCESS_KEY": secret or self.secret,
            "AWS_DEFAULT_REGION": REGION,
        }

    def client(self) -> Any:
        """A boto3 S3 client with the good credentials."""
        import boto3

        return boto3.client(
            "s3", endpoint_url=self.endpoint, region_name=REGION,
            aws_access_key_id=self.key, aws_secret_access_key=self.secret,
        )  # fmt: skip


@contextlib.contextmanager
def s3_server(workdir: Path, bucket: str = "mnist-team", *, auth: bool = True) -> Iterator[S3]:
    """``moto_server`` with one bucket; with ``auth``, only the key it creates is accepted.

    moto's authentication does not accept presigned URLs, which ``mlflow server`` hands its
    clients for downloads from S3: the MLflow tests run it without.
    """
    import boto3

    log = workdir / "moto.log"
    env = dict(os.environ)
    if auth:  # the first three requests (user, key, policy) need no signature
        env["INITIAL_NO_AUTH_ACTION_COUNT"] = "3"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", "0"],
            stdout=out, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    try:
        port = bound_port(log, r"Running on http://127\.0\.0\.1:(\d+)", process, 60)
        endpoint = f"http://127.0.0.1:{port}"
        # Without auth moto takes any key; these are placeholders.
        key, secret = "mnist", "mnist-test"  # pragma: allowlist secret
        if auth:
            iam = boto3.client(
                "iam", endpoint_url=endpoint, region_name=REGION,
                aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap",  # noqa: S106
            )  # fmt: skip
            iam.create_user(UserName="mnist")
            created = iam.create_access_key(UserName="mnist")["AccessKey"]
            key, secret = created["AccessKeyId"], created["SecretAccessKey"]
            allow_all = {"Effect": "Allow", "Action": "*", "Resource": "*"}
            policy = {"Version": "2012-10-17", "Statement": [allow_all]}
            iam.put_user_policy(
                UserName="mnist", PolicyName="all", PolicyDocument=json.dumps(policy)
            )
        s3 = S3(endpoint, key, secret, bucket, process)
        s3.client().create_bucket(Bucket=bucket)
        yield s3
    finally:
        stop(process)


def postgres_bin() -> Path:
    """The directory of the installed PostgreSQL server binaries (newest major version)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    if initdb is None:
        pytest.fail("PostgreSQL is not installed: .ci/run installs it (apt-get install postgresql)")
    return Path(initdb).resolve().parent


@dataclass
class Postgres:
    """A throwaway PostgreSQL cluster with a superuser ``mlflow`` and a database ``mlflow``."""

    directory: Path
    port: int
    as_owner: list[str] = field(default_factory=list)

    @property
    def uri(self) -> str:
        """SQLAlchemy URI of the ``mlflow`` database."""
        return f"postgresql://mlflow@127.0.0.1:{self.port}/mlflow"

    def _ctl(self, *args: str) -> None:
        subprocess.run(
            [*self.as_owner, str(postgres_bin() / "pg_ctl"), "-D", str(self.directory / "data"),
             *args],
            check=True, capture_output=True,
        )  # fmt: skip

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1"
        self._ctl("-o", options, "-l", str(self.directory / "server.log"), "-w", "start")

    def stop(self) -> None:
        """Stop the server at once (fast shutdown: open sessions are cut)."""
        self._ctl("-m", "fast", "-w", "stop")


@contextlib.contextmanager
def postgres_server() -> Iterator[Postgres]:
    """Initialise, start, yield and finally stop and delete a cluster."""
    # pytest's tmp_path is private to root (0700): the postgres user could not enter it.
    directory = Path(tempfile.mkdtemp(prefix="mnist-pg-"))
    as_owner: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        shutil.chown(directory, "postgres", "postgres")
        as_owner = ["runuser", "-u", "postgres", "--"]
    server = Postgres(directory, free_port(), as_owner)
    try:
        subprocess.run(
            [*as_owner, str(postgres_bin() / "initdb"), "-D", str(directory / "data"),
             "-A", "trust", "-U", "mlflow", "--no-sync"],
            check=True, capture_output=True,
        )  # fmt: skip
        # PostgreSQL cannot bind port 0 and say what it got: a port picked free may be taken
        # before it binds (another xdist worker, any process), so a failed start tries another.
        for attempt in range(3):
            try:
                server.start()
                break
            except subprocess.CalledProcessError:
                if attempt == 2:
                    raise
                server.port = free_port()
        subprocess.run(
            [*as_owner, str(postgres_bin() / "createdb"), "-h", "127.0.0.1",
             "-p", str(server.port), "-U", "mlflow", "mlflow"],
            check=True, capture_output=True,
        )  # fmt: skip
        yield server
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            server.stop()
        shutil.rmtree(directory, ignore_errors=True)


@contextlib.contextmanager
def mlflow_server(
    workdir: Path, backend: str, artifacts: str, env: dict[str, str] | None = None
) -> Iterator[str]:
    """A real ``mlflow server`` with served artifacts; yields its URL.

    Its job runner (seven Huey consumers, each importing MLflow) is off: the tests use no server
    jobs, and it doubled the CPU a server start costs. The server and its children are one
    process group, stopped together.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    cmd = [
        str(BIN / "mlflow"), "server", "--backend-store-uri", backend,
        "--serve-artifacts", "--artifacts-destination", artifacts,
        "--host", "127.0.0.1", "--port", "0", "--workers", "1",
    ]  # fmt: skip
    log = workdir / "mlflow-server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **(env or {})},
            start_new_session=True,
        )
    try:
        port = bound_port(log, r"Uvicorn running on http://127\.0\.0\.1:(\d+)", process, 120)
        url = f"http://127.0.0.1:{port}"
        wait_http_ok(f"{url}/health", process, log, 60, "mlflow server")
        yield url
    finally:
        stop_group(process)


def stop_group(process: subprocess.Popen[bytes]) -> None:
    """Terminate a server started with ``start_new_session`` and all its children."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


class CutProxy:
    """A loopback TCP proxy to ``target_port`` that can go down mid-transfer.

    ``cut_after(n)`` drops every connection once ``n`` more bytes have been forwarded (either
    way) and refuses connections from then on; ``restore()`` brings it back.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._budget: int | None = None
        self._down = False
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def endpoint(self) -> str:
        """The proxy's URL."""
        return f"http://127.0.0.1:{self.port}"

    def cut_after(self, n_bytes: int) -> None:
        """Go down once ``n_bytes`` more have passed."""
        with self._lock:
            self._budget = n_bytes

    def restore(self) -> None:
        """Accept and forward again, with no budget."""
        with self._lock:
            self._budget, self._down = None, False

    @property
    def is_down(self) -> bool:
        """Whether the proxy has cut."""
        return self._down

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._down:
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _spend(self, n: int) -> bool:
        with self._lock:
            if self._down:
                return False
            if self._budget is not None:
                self._budget -= n
                if self._budget <= 0:
                    self._down = True
                    for sock in self._sockets:
                        with contextlib.suppress(OSError):
                            sock.shutdown(socket.SHUT_RDWR)
                    self._sockets.clear()
                    return False
            return True

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if not self._spend(len(data)):
                    break
                sink.sendall(data)
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.close()

    def close(self) -> None:
        """Stop listening."""
        self._listener.close()


def serve_and_predict(repo: Path) -> dict[str, object]:
    """``make serve`` in ``repo`` and one prediction; the server is stopped afterwards.

    Returns:
        The answer's JSON.
    """
    env = {**os.environ, "BIND": "127.0.0.1:0", "WEB_CONCURRENCY": "1"}
    env.pop("DVC_ROOT", None)
    log = repo / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            ["make", "--no-print-directory", "serve"], cwd=repo, env=env, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        port = bound_port(log, GUNICORN_LISTENING, server, 120)
        url = f"http://127.0.0.1:{port}"
        wait_http_ok(f"{url}/health/ready", server, log, 120, "make serve")
        image = [[0] * 28 for _ in range(28)]
        answer = requests.post(f"{url}/predict", json={"images": [image]}, timeout=30)
        assert answer.status_code == 200, answer.text
        return dict(answer.json())
    finally:
        stop_group(server)
