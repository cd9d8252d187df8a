"""Multi-worker training's cluster contract: TF_CONFIG, the indexed Job, the launcher's errors."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml

from mnist_pipeline import cluster as clusters
from mnist_pipeline.errors import PipelineError
from tests.support import PROJECT_ROOT


def test_tf_config_round_trips_and_worker_zero_is_the_chief() -> None:
    cluster = clusters.Cluster(workers=("a:1", "b:2"), index=1)
    assert json.loads(cluster.tf_config()) == {
        "cluster": {"worker": ["a:1", "b:2"]},
        "task": {"type": "worker", "index": 1},
    }
    assert clusters.parse_tf_config(cluster.tf_config()) == cluster
    assert not cluster.chief
    assert clusters.Cluster(workers=("a:1", "b:2"), index=0).chief


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (None, "TF_CONFIG is not set: start the workers with `make train-distributed"),
        ("{not json", "TF_CONFIG is not a worker cluster"),
        ('{"cluster": {"worker": ["a:1"]}}', "TF_CONFIG is not a worker cluster (KeyError"),
        (
            '{"cluster": {"chief": ["c:1"], "worker": ["a:1"]},'
            ' "task": {"type": "chief", "index": 0}}',
            "only `worker` tasks are supported",
        ),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 1}}', "outside"),
    ],
)
def test_a_bad_tf_config_is_one_clear_error(raw: str | None, message: str) -> None:
    with pytest.raises(PipelineError) as err:
        clusters.parse_tf_config(raw)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_local_clusters_listen_on_distinct_loopback_ports() -> None:
    local = clusters.local_cluster(3)
    assert [c.index for c in local] == [0, 1, 2]
    assert len({c.workers for c in local}) == 1  # one cluster, seen from each worker
    hosts = [w.rsplit(":", 1) for w in local[0].workers]
    assert {h for h, _ in hosts} == {"127.0.0.1"}
    assert len({p for _, p in hosts}) == 3
    with pytest.raises(PipelineError, match="at least 1"):
        clusters.local_cluster(0)


def test_steps_per_epoch_are_whole_global_batches() -> None:
    assert clusters.steps_per_epoch(1000, 64, 2) == 15
    with pytest.raises(PipelineError, match="divisible by the 3 workers"):
        clusters.steps_per_epoch(1000, 64, 3)
    with pytest.raises(PipelineError, match="fewer than one batch"):
        clusters.steps_per_epoch(10, 64, 2)


def manifests() -> dict[str, dict[str, Any]]:
    manifest = PROJECT_ROOT / "kubernetes/training/train-distributed.yaml"
    docs = yaml.safe_load_all(manifest.read_text())
    return {d["kind"]: d for d in docs}


def test_the_indexed_job_runs_the_make_targets_command_on_a_headless_service() -> None:
    service, job = manifests()["Service"], manifests()["Job"]
    spec, pod = job["spec"], job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == spec["parallelism"] == int(env["WORKERS"])
    assert service["spec"]["clusterIP"] == "None"
    assert pod["subdomain"] == service["metadata"]["name"] == env["SERVICE_NAME"]
    assert env["JOB_NAME"] == job["metadata"]["name"]
    labels = job["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert container["ports"][0]["containerPort"] == int(env["WORKER_PORT"])
    # The same command `make train-distributed` starts once per worker (as --worker).
    command = container["command"]
    assert command == ["python", "-m", "mnist_pipeline.commands", "train-distributed", "--worker"]
    make = (PROJECT_ROOT / "Makefile").read_text()
    target = re.search(r"^train-distributed:.*\n\t(.+)$", make, re.MULTILINE)
    assert target, "no train-distributed target"
    assert "mnist train-distributed --workers $(WORKERS)" in target.group(1)
    # What pod 1 of that Job computes as its cluster.
    cluster = clusters.kubernetes_cluster({**env, "JOB_COMPLETION_INDEX": "1"})
    assert cluster == clusters.Cluster(
        workers=("mnist-train-0.mnist-train:2222", "mnist-train-1.mnist-train:2222"), index=1
    )


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({}, "JOB_COMPLETION_INDEX, WORKERS, JOB_NAME, SERVICE_NAME unset"),
        (
            {"JOB_COMPLETION_INDEX": "x", "WORKERS": "2", "JOB_NAME": "j", "SERVICE_NAME": "s"},
            "must be whole numbers",
        ),
        (
            {"JOB_COMPLETION_INDEX": "2", "WORKERS": "2", "JOB_NAME": "j", "SERVICE_NAME": "s"},
            "outside the 2 workers",
        ),
    ],
)
def test_outside_a_job_the_worker_says_what_is_missing(
    environ: dict[str, str], message: str
) -> None:
    with pytest.raises(PipelineError, match=re.escape(message)):
        clusters.kubernetes_cluster(environ)
