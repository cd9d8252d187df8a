"""Containers, manifests and security gates, checked statically (no Docker engine here)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import PROJECT_ROOT
from tests.support.dockerfile import env, exec_form, last, stages
from tests.support.tools import require

BIN = Path(sys.executable).parent


def tool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / args[0]), *args[1:]], capture_output=True, text=True, check=False,
        cwd=PROJECT_ROOT,
    )  # fmt: skip


@pytest.mark.parametrize(
    "dockerfile",
    [
        "Dockerfile",
        "docker/mlflow.Dockerfile",
        "docker/pipeline.Dockerfile",
        "docker/stand-in-s3.Dockerfile",
    ],
)
def test_hadolint_is_clean(dockerfile: str) -> None:
    result = tool("hadolint", dockerfile)
    assert result.returncode == 0, result.stdout + result.stderr


def runtime_problems(dockerfile: Path, stage: str = "runtime") -> list[str]:
    """What is wrong with a service stage of ``dockerfile``, read as instructions."""
    runtime = stages(dockerfile).get(stage)
    if runtime is None:
        return [f"no stage named {stage}"]
    problems = []
    if last(runtime, "USER") != "1000":
        problems.append(f"USER is {last(runtime, 'USER')!r}, not 1000")
    healthcheck = last(runtime, "HEALTHCHECK") or ""
    if "/health/live" not in healthcheck or "CMD" not in healthcheck:
        problems.append("no HEALTHCHECK on /health/live")
    if env(runtime).get("PYTHONUNBUFFERED") != "1":
        problems.append("PYTHONUNBUFFERED is not 1")
    if exec_form(last(runtime, "ENTRYPOINT")) != ["/srv/entrypoint.sh"]:
        problems.append("ENTRYPOINT is not the exec-form entrypoint script")
    return problems


def test_runtime_image_is_small_and_unprivileged() -> None:
    assert runtime_problems(PROJECT_ROOT / "Dockerfile") == []
    assert runtime_problems(PROJECT_ROOT / "Dockerfile", "slim") == []
    serve = (PROJECT_ROOT / "requirements-serve.lock").read_text().lower().replace("_", "-")
    for heavy in ("dvc==", "evidently==", "pytest==", "mlflow==", "pandas=="):
        assert heavy not in serve, heavy
    for needed in ("tensorflow-cpu==", "gunicorn==", "flask-openapi3==", "mlflow-skinny=="):
        assert needed in serve, needed
    # The slim image serves through LiteRT alone: neither TensorFlow nor SciPy is installed.
    slim = (PROJECT_ROOT / "requirements-slim.lock").read_text().lower().replace("_", "-")
    for heavy in ("tensorflow", "keras==", "scipy==", "mlflow==", "pandas=="):
        assert heavy not in slim, heavy
    for needed in ("ai-edge-litert==", "gunicorn==", "flask-openapi3==", "mlflow-skinny=="):
        assert needed in slim, needed
    assert env(stages(PROJECT_ROOT / "Dockerfile")["slim"]).get("MODEL_VARIANT") == "tflite-int8"
    ignored = (PROJECT_ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", "data", ".dvc/cache"} <= set(ignored)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (("USER 1000", "# USER 1000"), "USER is None"),
        (("USER 1000", "USER 1000\nUSER root"), "USER is 'root'"),
        (("/health/live", "/metrics"), "no HEALTHCHECK"),
        (("PYTHONUNBUFFERED=1", "PYTHONUNBUFFERED=0"), "PYTHONUNBUFFERED"),
        (('ENTRYPOINT ["/srv/entrypoint.sh"]', "ENTRYPOINT /srv/entrypoint.sh"), "ENTRYPOINT"),
    ],
)
def test_the_runtime_checks_fail_on_a_broken_dockerfile(
    tmp_path: Path, change: tuple[str, str], problem: str
) -> None:
    text = (PROJECT_ROOT / "Dockerfile").read_text()
    assert change[0] in text
    broken = tmp_path / "Dockerfile"
    broken.write_text(text.replace(change[0], change[1]))
    assert any(problem in p for p in runtime_problems(broken)), runtime_problems(broken)


def test_compose_file_matches_the_compose_spec() -> None:
    result = tool(
        "check-jsonschema", "--builtin-schema", "vendor.compose-spec", "docker-compose.yml"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    compose = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "minio", "mlflow", "api", "prometheus", "alertmanager", "grafana"} <= set(
        services)  # fmt: skip
    assert "postgresql+psycopg://" in services["mlflow"]["command"]  # psycopg 3, as in the lock
    assert "s3://" in services["mlflow"]["command"]
    # Compose 1.29 rejects a top-level name: (the project name is COMPOSE_PROJECT_NAME).
    assert set(compose) <= {"services", "volumes", "x-python-build-args"}
    # Every third-party image from a variable whose default is the official image; ours are built.
    for name, service in services.items():
        image = service.get("image", "")
        if "build" not in service:
            assert re.fullmatch(r"\$\{[A-Z_]+_IMAGE:-[a-z0-9./-]+:[\w.-]+\}", image), (name, image)
        else:
            assert service["build"]["args"]["PYTHON_IMAGE"].startswith("${PYTHON_IMAGE:-"), name


def test_compose_file_works_with_docker_compose_1_29() -> None:
    """Debian's docker-compose (Python, 1.29), which .ci/machine installs, accepts the file."""
    require("docker-compose")
    result = subprocess.run(
        ["docker-compose", "config", "-q"], capture_output=True, text=True, check=False,
        cwd=PROJECT_ROOT, env={**os.environ, "POSTGRES_PASSWORD": "p", "MINIO_ROOT_PASSWORD": "p",
                               "GRAFANA_ADMIN_PASSWORD": "p"},  # pragma: allowlist secret
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_deployment_probes_and_security() -> None:
    spec = yaml.safe_load((PROJECT_ROOT / "kubernetes/base/deployment.yaml").read_text())["spec"]
    pod = spec["template"]["spec"]
    container = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert "/tmp/prometheus" in mounts
    assert container["resources"]["limits"]["memory"]


def test_grafana_dashboard_shows_what_operators_need() -> None:
    dashboard = json.loads((PROJECT_ROOT / "monitoring/grafana/dashboards/mnist.json").read_text())
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    for metric in ("flask_http_request_duration_seconds_count", "histogram_quantile(0.99",
                   'status=~"5.."', "mnist_predictions_total", "mnist_prediction_confidence_bucket",
                   "mnist_drift_detected"):  # fmt: skip
        assert metric in exprs, metric


def test_bandit_finds_nothing_medium_or_high() -> None:
    result = tool("bandit", "-q", "-ll", "-f", "json", "-r", "src", "app")
    findings = json.loads(result.stdout)["results"]
    assert not findings, [(f["filename"], f["test_id"], f["issue_text"]) for f in findings]


def test_no_new_secret_like_strings() -> None:
    """Every finding must be in the audited baseline (today: published dataset checksums)."""
    files = subprocess.run(["git", "ls-files"], capture_output=True, text=True, check=True,
                           cwd=PROJECT_ROOT).stdout.split()  # fmt: skip
    scanned = [f for f in files if not f.startswith(("reports/", "requirements"))]
    result = tool("detect-secrets-hook", "--baseline", ".secrets.baseline", *scanned)
    assert result.returncode == 0, result.stdout + result.stderr


def test_pre_commit_runs_the_ci_linters() -> None:
    config = yaml.safe_load((PROJECT_ROOT / ".pre-commit-config.yaml").read_text())
    ids = {hook["id"] for repo in config["repos"] for hook in repo["hooks"]}
    assert {"ruff-check", "ruff-format", "mypy", "bandit", "hadolint", "detect-secrets"} <= ids


def copied_python_files(stage: str) -> set[str]:
    """The Python files a Dockerfile stage copies from the build context, relative to the root."""
    from tests.support.dockerfile import context_copies

    copied: set[str] = set()
    for sources, _ in context_copies(stages(PROJECT_ROOT / "Dockerfile")[stage]):
        for source in sources:
            path = PROJECT_ROOT / source
            files = path.rglob("*.py") if path.is_dir() else [path]
            copied |= {str(f.relative_to(PROJECT_ROOT)) for f in files}
    return copied


def test_the_monitor_image_copies_every_module_mnist_monitor_imports() -> None:
    """The command's package and what `mnist monitor` imports (the other sub-commands import
    their modules only when they run, so they need not be in this image)."""
    from tests.unit.test_dvc_graph import import_closure

    copied = copied_python_files("monitor")
    # The commands' own top-level imports: the exit codes and one-line errors of mnist_pipeline.cli.
    closure = import_closure("mnist_pipeline.ops.monitor") | import_closure("mnist_pipeline.cli")
    needed = {str(p.relative_to(PROJECT_ROOT)) for p in closure}
    needed |= {str(p.relative_to(PROJECT_ROOT))
               for p in (PROJECT_ROOT / "src/mnist_pipeline/commands").glob("*.py")}  # fmt: skip
    assert needed <= copied, sorted(needed - copied)
    # Its packages are the monitor lock's: no TensorFlow or Flask ride along.
    lock = (PROJECT_ROOT / "requirements-monitor.lock").read_text().lower()
    assert "evidently==" in lock
    assert "tensorflow" not in lock
    assert "flask" not in lock


def test_the_service_image_copies_what_mnist_shadow_imports() -> None:
    """The same image runs the shadow consumer (compose, Kubernetes): `mnist shadow` and the
    top-level imports of the command must be in it, and Typer in its lock."""
    from tests.unit.test_dvc_graph import import_closure

    copied = copied_python_files("service")
    needed = {str(p.relative_to(PROJECT_ROOT)) for p in import_closure("mnist_pipeline.cli")}
    needed |= {str(p.relative_to(PROJECT_ROOT))
               for p in (PROJECT_ROOT / "src/mnist_pipeline/commands").glob("*.py")}  # fmt: skip
    needed.add("app/shadow_consumer.py")
    assert needed <= copied, sorted(needed - copied)
    for lock in ("requirements-serve.lock", "requirements-slim.lock"):
        assert "\ntyper==" in (PROJECT_ROOT / lock).read_text().lower(), lock


def test_compose_runs_the_monitor_on_a_schedule_against_the_service_log() -> None:
    services = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())["services"]
    monitor, api, shadow = services["monitor"], services["api"], services["shadow"]
    assert monitor["build"]["target"] == "monitor"
    assert api["build"]["target"] == "runtime"
    assert monitor["command"][0] == "--every"
    # One stream: the api publishes to it, the monitor and the shadow consumer read it.
    stream = api["environment"]["EVENTS_URL"]
    assert stream.startswith("redis://redis:")
    assert monitor["command"][monitor["command"].index("--events") + 1] == stream
    assert shadow["environment"]["EVENTS_URL"] == stream
    assert shadow["entrypoint"] == ["python", "-m", "mnist_pipeline.commands", "shadow"]
    state = next(v for v in api["volumes"] if v.endswith(":/var/lib/mnist"))
    assert state in monitor["volumes"]  # the same log volume the api writes
    drift = next(v for v in api["volumes"] if ":/srv/reports/drift" in v)
    assert drift.removesuffix(":ro") in monitor["volumes"]  # its verdict reaches the api


def test_kubernetes_runs_one_monitor_and_a_shadow_consumer_against_the_pods_stream() -> None:
    def load(name: str) -> list[dict[str, Any]]:
        return list(yaml.safe_load_all((PROJECT_ROOT / "kubernetes/base" / name).read_text()))

    stream = load("configmap.yaml")[0]["data"]["EVENTS_URL"]
    service = next(d for d in load("redis.yaml") if d["kind"] == "Service")
    assert stream.startswith(f"redis://{service['metadata']['name']}:")
    job = load("monitor.yaml")[0]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    args = job["containers"][0]["args"]
    assert args[args.index("--events") + 1] == stream
    shadow = load("shadow.yaml")[0]["spec"]["template"]["spec"]["containers"][0]
    assert shadow["command"] == ["python", "-m", "mnist_pipeline.commands", "shadow"]
    assert shadow["envFrom"][0]["configMapRef"]["name"] == "mnist-api"  # EVENTS_URL from there
    api = load("deployment.yaml")[0]["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in api] == ["api"]  # the candidate never rides in an API pod
