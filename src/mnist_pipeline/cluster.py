"""The cluster a multi-worker training job runs on, as TensorFlow's ``TF_CONFIG`` describes it.

Kept apart from :mod:`mnist_pipeline.distributed` so the launcher (``make train-distributed``)
and the checks of the Kubernetes Job read it without importing TensorFlow.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Mapping
from dataclasses import dataclass

from mnist_pipeline.errors import PipelineError

TF_CONFIG = "TF_CONFIG"
LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class Cluster:
    """The workers of one training job and which of them this process is.

    Attributes:
        workers: ``host:port`` of every worker, in TensorFlow's order.
        index: This worker's position in ``workers``; 0 is the chief.
    """

    workers: tuple[str, ...]
    index: int

    @property
    def chief(self) -> bool:
        """True for worker 0, the one that writes the model, the curves and the MLflow run."""
        return self.index == 0

    def tf_config(self) -> str:
        """This worker's ``TF_CONFIG`` value (JSON)."""
        return json.dumps(
            {
                "cluster": {"worker": list(self.workers)},
                "task": {"type": "worker", "index": self.index},
            }
        )


def parse_tf_config(raw: str | None) -> Cluster:
    """Read ``TF_CONFIG`` the way this project uses it: a ``worker`` list, worker 0 the chief.

    Args:
        raw: The variable's value (``None`` when unset).

    Returns:
        The cluster and this worker's index.

    Raises:
        PipelineError: If it is unset, not JSON, or not a worker list with a valid index.
    """
    if not raw:
        raise PipelineError(
            "train.distribution is multi_worker but TF_CONFIG is not set: start the workers with "
            "`make train-distributed WORKERS=N` (or the Kubernetes Job in kubernetes/), "
            "or set train.distribution: single"
        )
    try:
        config = json.loads(raw)
        workers = tuple(str(w) for w in config["cluster"]["worker"])
        task = config["task"]
        kind, index = str(task["type"]), int(task["index"])
    except (ValueError, KeyError, TypeError) as err:
        raise PipelineError(
            f"TF_CONFIG is not a worker cluster ({err.__class__.__name__}: {err}); expected "
            '{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": N}}'
        ) from None
    extra = sorted(set(config["cluster"]) - {"worker"})
    if extra or kind != "worker":
        raise PipelineError(
            f"TF_CONFIG names task types {extra or [kind]}: only `worker` tasks are supported "
            "(worker 0 is the chief)"
        )
    return _checked(workers, index)


def _checked(workers: tuple[str, ...], index: int) -> Cluster:
    if not workers or not 0 <= index < len(workers):
        raise PipelineError(f"worker index {index} is outside the {len(workers)} workers listed")
    return Cluster(workers=workers, index=index)


def free_ports(count: int, host: str = LOOPBACK) -> list[int]:
    """``count`` distinct free TCP ports on ``host`` (held open together while chosen).

    Args:
        count: How many.
        host: The interface to bind.

    Returns:
        The port numbers.
    """
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind((host, 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def local_cluster(workers: int, host: str = LOOPBACK) -> list[Cluster]:
    """One :class:`Cluster` per worker of a job on free loopback ports (for trying it here).

    Args:
        workers: Number of workers (at least 1).
        host: The interface the workers listen on.

    Returns:
        The clusters, index 0 first.

    Raises:
        PipelineError: If ``workers`` is below 1.
    """
    if workers < 1:
        raise PipelineError(f"WORKERS must be at least 1, got {workers}")
    addresses = tuple(f"{host}:{port}" for port in free_ports(workers, host))
    return [Cluster(workers=addresses, index=i) for i in range(workers)]


def kubernetes_cluster(environ: Mapping[str, str]) -> Cluster:
    """The cluster of an indexed Kubernetes Job whose pods a headless Service names.

    A pod of an indexed Job gets ``JOB_COMPLETION_INDEX`` and the hostname ``JOB-INDEX``; with
    ``subdomain`` set to a headless Service, ``JOB-INDEX.SERVICE`` resolves to it.

    Args:
        environ: Needs ``JOB_COMPLETION_INDEX``, ``WORKERS``, ``JOB_NAME``, ``SERVICE_NAME``;
            ``WORKER_PORT`` defaults to 2222.

    Returns:
        This pod's cluster.

    Raises:
        PipelineError: If a variable is missing or not a number.
    """
    needed = ("JOB_COMPLETION_INDEX", "WORKERS", "JOB_NAME", "SERVICE_NAME")
    missing = [k for k in needed if not environ.get(k)]
    if missing:
        raise PipelineError(
            f"no TF_CONFIG and not an indexed Job: {', '.join(missing)} unset "
            "(see kubernetes/training/train-distributed.yaml)"
        )
    try:
        index, count = int(environ["JOB_COMPLETION_INDEX"]), int(environ["WORKERS"])
        port = int(environ.get("WORKER_PORT", "2222"))
    except ValueError as err:
        raise PipelineError(
            f"JOB_COMPLETION_INDEX, WORKERS and WORKER_PORT must be whole numbers ({err})"
        ) from None
    job, service = environ["JOB_NAME"], environ["SERVICE_NAME"]
    workers = tuple(f"{job}-{i}.{service}:{port}" for i in range(count))
    return _checked(workers, index)


def steps_per_epoch(images: int, global_batch: int, workers: int) -> int:
    """Steps of one multi-worker epoch: whole global batches only (every worker runs them all).

    Args:
        images: Training images.
        global_batch: ``train.batch_size``.
        workers: Workers in the cluster.

    Returns:
        ``images // global_batch``.

    Raises:
        PipelineError: If the batch does not split evenly over the workers, or no step fits.
    """
    if global_batch % workers:
        raise PipelineError(
            f"train.batch_size {global_batch} must be divisible by the {workers} workers "
            "(each takes an equal share of every batch)"
        )
    steps = images // global_batch
    if steps == 0:
        raise PipelineError(
            f"{images} training images are fewer than one batch of {global_batch}: "
            "lower train.batch_size"
        )
    return steps
