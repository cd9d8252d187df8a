"""``make train-distributed WORKERS=N``: the train stage on N TensorFlow workers.

Two modes of one command:

- ``mnist train-distributed --workers N`` starts N workers on free loopback ports, each the
  train stage with ``train.distribution: multi_worker`` and its own ``TF_CONFIG``, prints their
  output line by line with the worker's number, and stops them all if one fails (the others
  would wait for it forever). For trying the code path on one machine.
- ``mnist train-distributed --worker`` is one worker: the cluster comes from ``TF_CONFIG`` or,
  inside the indexed Kubernetes Job (``kubernetes/training/train-distributed.yaml``), from the Job's
  ``JOB_COMPLETION_INDEX`` and the headless Service that names its pods.

This stands beside the DVC graph, not in it: ``TF_CONFIG`` is an input DVC cannot see. The chief
(worker 0) writes what the train stage writes (``models/mnist``, ``reports/train``, the MLflow
run), so afterwards ``dvc status`` shows ``train`` as changed; ``dvc commit train`` keeps the
result, ``dvc checkout`` restores the graph's.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from mnist_contracts import paths
from mnist_pipeline import cluster as clusters
from mnist_pipeline.errors import PipelineError

log = logging.getLogger(__name__)


def _relay(prefix: str, stream: IO[str]) -> None:
    for line in stream:
        sys.stdout.write(f"{prefix} {line}")
        sys.stdout.flush()


def launch(workers: int, root: Path = Path()) -> None:
    """Run ``workers`` workers on loopback until all finish; stop all when one fails.

    Args:
        workers: How many workers.
        root: The repository root (each worker's working directory).

    Raises:
        PipelineError: If a worker exits with an error.
    """
    for needed in (paths.PARAMS_FILE, paths.split_file("train"), paths.split_file("val")):
        if not (root / needed).is_file():
            raise PipelineError(
                f"{needed} is missing: run `make repro` (or `dvc repro preprocess`)"
            )
    members = clusters.local_cluster(workers)
    log.info("starting %d workers on %s", workers, ", ".join(members[0].workers))
    started = time.perf_counter()
    procs: list[subprocess.Popen[str]] = []
    relays: list[threading.Thread] = []
    try:
        for cluster in members:
            env = {**os.environ, clusters.TF_CONFIG: cluster.tf_config()}
            proc = subprocess.Popen(
                [sys.executable, "-m", "mnist_pipeline.commands", "train-distributed", "--worker"],
                cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            )  # fmt: skip
            assert proc.stdout is not None  # noqa: S101 - stdout=PIPE above
            relay = threading.Thread(
                target=_relay, args=(f"[worker {cluster.index}]", proc.stdout), daemon=True
            )
            relay.start()
            procs.append(proc)
            relays.append(relay)
        failed = _wait_all(procs)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for relay in relays:
            relay.join(timeout=5)
    if failed is not None:
        raise PipelineError(
            f"worker {failed} exited with code {procs[failed].returncode} (its output is above, "
            f"prefixed [worker {failed}]); the other workers were stopped"
        )
    log.info("%d workers finished in %.1f s", workers, time.perf_counter() - started)


def _wait_all(procs: Sequence[subprocess.Popen[str]]) -> int | None:
    """Wait until every process exits; return the index of the first that failed, if any."""
    while True:
        codes = [p.poll() for p in procs]
        for index, code in enumerate(codes):
            if code not in (None, 0):
                return index
        if all(code == 0 for code in codes):
            return None
        time.sleep(0.2)


def worker(root: Path = Path()) -> None:
    """Be one worker: find the cluster, then run the train stage as ``multi_worker``.

    Args:
        root: The repository root.
    """
    if os.environ.get(clusters.TF_CONFIG):
        cluster = clusters.parse_tf_config(os.environ[clusters.TF_CONFIG])
    else:
        cluster = clusters.kubernetes_cluster(os.environ)
    os.environ[clusters.TF_CONFIG] = cluster.tf_config()
    from mnist_pipeline.stages import train  # imports TensorFlow: only once the cluster is known

    train.main(root, distribution="multi_worker")
