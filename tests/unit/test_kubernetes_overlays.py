"""The Kubernetes manifests: a base and two overlays, rendered, validated, pinned to CI's images.

Rendered with kubectl's own kustomize (v5 here and on GitHub's runners; Debian's kubectl 1.20
ships v2, which knows neither ``replicas`` nor inline ``patches``), validated with
kubernetes-validate against Kubernetes 1.31 as the base manifests are.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import PROJECT_ROOT
from tests.support.tools import require
from tests.unit.test_workflows import pushed_images

KUBERNETES = PROJECT_ROOT / "kubernetes"
OVERLAYS = ("staging", "production")
BIN = Path(sys.executable).parent
COMMIT = "0123456789abcdef0123456789abcdef01234567"  # pragma: allowlist secret
DIGESTS = {"mnist-api": "sha256:" + "a" * 64, "mnist-monitor": "sha256:" + "b" * 64}


def render(overlay: Path) -> list[dict[str, Any]]:
    """``kubectl kustomize OVERLAY``'s documents."""
    require("kustomize")
    done = subprocess.run(["kubectl", "kustomize", str(overlay)], capture_output=True, text=True,
                          check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def images(documents: list[dict[str, Any]]) -> set[str]:
    """Every container image the documents run."""
    found = set()
    for document in documents:
        spec = document.get("spec", {})
        pod = spec.get("jobTemplate", {}).get("spec", spec).get("template", {}).get("spec", {})
        found |= {c["image"] for c in pod.get("containers", []) + pod.get("initContainers", [])}
    return found


def by_kind(documents: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    """The one document of ``kind`` named ``name``."""
    return next(d for d in documents if d["kind"] == kind and d["metadata"]["name"] == name)


# Every resource file; kustomize's own files are checked by rendering the overlays.
RESOURCES = sorted(
    p for p in KUBERNETES.rglob("*.yaml") if p.name != "kustomization.yaml" and "overlays" not in
    p.parts
)  # fmt: skip


@pytest.mark.parametrize("manifest", RESOURCES, ids=lambda p: str(p.relative_to(KUBERNETES)))
def test_base_manifests_validate(manifest: Path) -> None:
    result = subprocess.run(
        [str(BIN / "kubernetes-validate"), "-k", "1.31.0", "--strict", str(manifest)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_overlay_renders_validates_and_runs_only_images_ci_pushes(
    overlay: str, tmp_path: Path
) -> None:
    documents = render(KUBERNETES / "overlays" / overlay)
    rendered = tmp_path / f"{overlay}.yaml"
    rendered.write_text(yaml.safe_dump_all(documents))
    result = subprocess.run(
        [str(BIN / "kubernetes-validate"), "-k", "1.31.0", "--strict", str(rendered)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert {d["metadata"].get("namespace") for d in documents if d["kind"] != "Namespace"} == {
        f"mnist-{overlay}"
    }
    # Ours are pinned by commit tag and digest, and are images CI pushes; the rest (Redis,
    # Alertmanager) are third-party images at a fixed version.
    ours = {i for i in images(documents) if "/mnist-" in i}
    assert ours, images(documents)
    for image in ours:
        name_tag, _, digest = image.partition("@")
        repository, _, tag = name_tag.rpartition(":")
        assert repository.rsplit("/", 1)[1] in pushed_images(), image
        assert len(tag) == 40, image  # the commit
        assert digest.startswith("sha256:"), image
    assert not any(i.endswith(":latest") for i in images(documents))


def test_the_overlays_differ_in_replicas_host_and_resources() -> None:
    staging, production = (render(KUBERNETES / "overlays" / o) for o in OVERLAYS)

    def facts(documents: list[dict[str, Any]]) -> tuple[object, ...]:
        deployment = by_kind(documents, "Deployment", "mnist-api")
        hpa = by_kind(documents, "HorizontalPodAutoscaler", "mnist-api")
        ingress = by_kind(documents, "Ingress", "mnist-api")
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        return (
            deployment["spec"]["replicas"],
            hpa["spec"]["minReplicas"],
            ingress["spec"]["rules"][0]["host"],
            container["resources"]["requests"]["cpu"],
        )

    assert facts(staging) == (1, 1, "mnist.staging.example.com", "500m")
    assert facts(production) == (3, 3, "mnist.example.com", "1")
    ingress = by_kind(production, "Ingress", "mnist-api")
    assert ingress["spec"]["tls"][0]["hosts"] == ["mnist.example.com"]


def test_pinning_an_overlay_sets_every_image_to_the_commit_and_digest(tmp_path: Path) -> None:
    copy = tmp_path / "kubernetes"
    shutil.copytree(KUBERNETES, copy)
    overlay = copy / "overlays/staging"
    args = [sys.executable, str(PROJECT_ROOT / "scripts/pin_images.py"), str(overlay),
            "--registry", "ghcr.io/acme/mnist", "--commit", COMMIT,
            *(f"--digest={name}={digest}" for name, digest in DIGESTS.items())]  # fmt: skip
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert (overlay / "kustomization.yaml").read_text().startswith("# The staging environment")
    ours = {i for i in images(render(overlay)) if "/mnist-" in i}
    assert ours == {f"ghcr.io/acme/mnist/{n}:{COMMIT}@{d}" for n, d in DIGESTS.items()}


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"--registry": "ghcr.io/Acme/mnist"}, "not a lower-case registry path"),
        ({"--commit": "main"}, "not a full 40-character git commit"),
        ({"--digest": ["mnist-api=sha256:" + "a" * 64]}, "no --digest for mnist-monitor"),
        ({"--digest": ["mnist-api=latest", "mnist-monitor=sha256:" + "b" * 64]}, "not sha256:"),
    ],
)
def test_a_bad_pin_is_one_line_and_leaves_the_overlay_alone(
    tmp_path: Path, change: dict[str, Any], says: str
) -> None:
    overlay = tmp_path / "staging"
    shutil.copytree(KUBERNETES / "overlays/staging", overlay)
    before = (overlay / "kustomization.yaml").read_bytes()
    options: dict[str, Any] = {
        "--registry": "ghcr.io/acme/mnist",
        "--commit": COMMIT,
        "--digest": [f"{n}={d}" for n, d in DIGESTS.items()],
        **change,
    }
    args = [sys.executable, str(PROJECT_ROOT / "scripts/pin_images.py"), str(overlay)]
    for option, value in options.items():
        for item in value if isinstance(value, list) else [value]:
            args += [option, item]
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    assert done.returncode == 2
    assert says in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert (overlay / "kustomization.yaml").read_bytes() == before
