"""``mnist remote``: one S3-compatible DVC remote for data, models and the run-cache.

``configure`` writes the remote to ``.dvc/config.local`` (never to the committed ``.dvc/config``:
a committed remote that points at a private bucket breaks every clone and every fork). The
credentials come only from the environment (``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` or
``AWS_PROFILE``), as ``dvc-s3`` reads them; nothing here writes a key to disk.

``push`` and ``pull`` run ``dvc push/pull --run-cache`` and turn DVC's failures into one line that
names the remote and says what to do. ``push`` also uploads the objects of the run-cache's
git-tracked outputs (``cache: false`` metrics and plots): ``dvc push --run-cache`` sends the
run-cache entries but not those objects, so another machine could not restore a stage from it
(it falls back to running the stage, i.e. to training).
"""

from __future__ import annotations

import logging
import subprocess
from dataclasses import dataclass
from pathlib import Path

from mnist_pipeline.errors import PipelineError
from mnist_pipeline.ops.tools import tool

DEFAULT_NAME = "storage"

# What DVC's error lines say, and what the user should do about it; the first match wins.
_CAUSES: tuple[tuple[tuple[str, ...], str], ...] = (
    (
        ("Unable to locate credentials", "NoCredentials", "PartialCredentials"),
        "no credentials: export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)",
    ),
    (
        ("Forbidden", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "(403)"),
        "the server refused the credentials: check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
    ),
    (
        ("NoSuchBucket", "bucket does not exist", "Bucket does not exist"),
        "the bucket does not exist: create it, or fix the URL with `make remote`",
    ),
    (
        (
            "Could not connect",
            "failed to connect",
            "Connection refused",
            "Connect timeout",
            "Cannot connect to host",
            "Connection was closed",
            "ServerDisconnected",
            "Read timeout",
            "Connection reset",
        ),
        "the server cannot be reached or dropped the connection: check ENDPOINT and that the "
        "server is up, then run the same command again",
    ),
    (
        ("failed to download", "failed to upload", "failed to push", "failed to pull"),
        "the transfer stopped part-way; what arrived is complete: run the same command again",
    ),
)


@dataclass(frozen=True)
class Remote:
    """The configured default remote."""

    name: str
    url: str
    endpoint: str | None

    def __str__(self) -> str:
        where = f" at {self.endpoint}" if self.endpoint else ""
        return f"remote '{self.name}' ({self.url}{where})"


def _dvc(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # The dvc beside this interpreter: the same DVC (and dvc-s3) as the pipeline's.
    return subprocess.run(
        [tool("dvc"), *args],
        cwd=root,
        stdout=None,  # DVC's summary ("N files pushed") goes straight to the user
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )


def configure(root: Path, url: str, endpoint: str | None, name: str = DEFAULT_NAME) -> Remote:
    """Make ``url`` the default remote of the repository at ``root``, in ``.dvc/config.local``.

    Args:
        root: The repository.
        url: ``s3://BUCKET/PATH``.
        endpoint: The S3 API's URL for MinIO, Ceph or any S3-compatible store; None for AWS.
        name: The remote's name.

    Returns:
        The remote as configured.

    Raises:
        PipelineError: On a URL or endpoint DVC's S3 remote cannot use.
    """
    bucket = url.removeprefix("s3://").split("/", 1)[0]
    if not url.startswith("s3://") or not bucket:
        raise PipelineError(
            f"remote URL {url!r} is not s3://BUCKET/PATH; "
            "e.g. make remote URL=s3://my-bucket/mnist ENDPOINT=http://127.0.0.1:9000"
        )
    if endpoint and not endpoint.startswith(("http://", "https://")):
        raise PipelineError(f"ENDPOINT {endpoint!r} is not an http:// or https:// URL")
    # --force replaces the whole section, so an old endpoint does not survive a new URL.
    steps = [["remote", "add", "--local", "--default", "--force", name, url]]
    if endpoint:
        steps.append(["remote", "modify", "--local", name, "endpointurl", endpoint])
    for step in steps:
        result = _dvc(root, *step)
        if result.returncode != 0:
            raise PipelineError(f"dvc {' '.join(step[:2])}: {_error_lines(result.stderr)[0]}")
    return Remote(name, url, endpoint or None)


def configured(root: Path) -> Remote:
    """The default remote of the repository at ``root``.

    Raises:
        PipelineError: If none is configured.
    """
    from dvc.config import Config

    config = Config(dvc_dir=root / ".dvc")
    name = config["core"].get("remote")
    if not name or name not in config["remote"]:
        raise PipelineError(
            "no DVC remote is configured: run make remote URL=s3://BUCKET/PATH "
            "[ENDPOINT=http://HOST:PORT] first"
        )
    section = config["remote"][name]
    return Remote(name, str(section["url"]), section.get("endpointurl"))


def _error_lines(stderr: str) -> list[str]:
    lines = [line.removeprefix("ERROR: ").strip() for line in stderr.splitlines()]
    errors = [line for line in lines if line and not line.startswith("Having any troubles")]
    return errors or ["no error message"]


def explain(stderr: str) -> str:
    """One line from DVC's error output: the cause the user can act on, and DVC's own words.

    Args:
        stderr: What ``dvc push/pull`` wrote to standard error.

    Returns:
        ``"<cause> (dvc: <DVC's first error line>)"``.
    """
    errors = [line for line in _error_lines(stderr) if not line.startswith("WARNING")]
    first = (errors or ["no error message"])[0]
    text = "\n".join(errors)
    cause = next(
        (advice for needles, advice in _CAUSES if any(needle in text for needle in needles)),
        "DVC failed",
    )
    return f"{cause} (dvc: {first[:300]})"


def _transfer(root: Path, verb: str) -> Remote:
    """``dvc push|pull --run-cache`` with the default remote; one line naming it on failure."""
    remote = configured(root)
    result = _dvc(root, verb, "--run-cache", "--remote", remote.name)
    if result.returncode != 0:
        where = "to" if verb == "push" else "from"
        raise PipelineError(f"{verb} {where} {remote}: {explain(result.stderr)}")
    return remote


def push(root: Path) -> Remote:
    """``dvc push --run-cache`` to the default remote, plus the run-cache's git-tracked outputs.

    Args:
        root: The repository.

    Returns:
        The remote pushed to.

    Raises:
        PipelineError: With one line naming the remote and the cause.
    """
    remote = _transfer(root, "push")
    try:
        count = _push_run_cache_outputs(root, remote.name)
    except Exception as err:  # noqa: BLE001 - s3fs/botocore/aiohttp raise many kinds
        cause = explain(f"{type(err).__name__}: {err}")
        raise PipelineError(f"push to {remote}: {cause}") from None
    if count:
        print(f"{count} run-cache output objects pushed")
    return remote


def _push_run_cache_outputs(root: Path, remote: str) -> int:
    """Upload the objects that the local run-cache entries point to; returns how many."""
    from dvc.repo import Repo

    logging.getLogger("aiobotocore").setLevel(logging.WARNING)  # "found credentials in ..."
    with Repo(str(root)) as repo:
        runs = Path(repo.stage_cache.cache_dir)
        # An entry is runs/<key[:2]>/<key>/<value>; get_used_objs wants (key, value) pairs.
        entries = [(path.parent.name, path.name) for path in sorted(runs.glob("*/*/*"))]
        pushed = 0
        for ids in repo.stage_cache.get_used_objs(entries).values():
            result = repo.cloud.push(ids, remote=remote)
            if result.failed:
                raise PipelineError(f"{len(result.failed)} run-cache objects failed to upload")
            pushed += len(result.transferred)
        return pushed


def pull(root: Path) -> Remote:
    """``dvc pull --run-cache`` from the default remote.

    Args:
        root: The repository.

    Returns:
        The remote pulled from.

    Raises:
        PipelineError: With one line naming the remote and the cause.
    """
    return _transfer(root, "pull")
