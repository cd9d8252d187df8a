"""The three variants of one export served side by side by real Gunicorn workers.

A small model trained here on real MNIST is exported (SavedModel plus its two TFLite files) and
served three times: ``MODEL_VARIANT=savedmodel``, ``tflite-float`` and ``tflite-int8``. The same
official test images go to each; every route, reload and the metrics are checked on each; and a
hook inside the workers (tests/service/gunicorn_probe.py) says whether TensorFlow was imported.
"""

from __future__ import annotations

import contextlib
import io
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import requests
from PIL import Image

from mnist_contracts.lite import LITE_VARIANTS, VARIANTS
from mnist_contracts.model import read_identity
from mnist_pipeline.dataset import Split
from mnist_pipeline.params import EvaluateParams
from tests.support.gunicorn_server import Server, gunicorn_server
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("digit-model")]
ADMIN_KEY = "variant-admin"  # pragma: allowlist secret
PROBE = Path(__file__).with_name("gunicorn_probe.py")


@pytest.fixture(scope="module")
def trained(digit_model: tuple[Path, Split]) -> tuple[Path, Split]:
    """An export of a small model trained on real MNIST, and the official test split."""
    return digit_model


@pytest.fixture(scope="module")
def servers(
    trained: tuple[Path, Split], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Server]]:
    """One Gunicorn service (2 workers) per variant, all serving the same export."""
    model_dir, _ = trained
    with contextlib.ExitStack() as stack:
        found = {}
        for variant in VARIANTS:
            tmp = tmp_path_factory.mktemp(variant)
            env = {
                "MODEL_DIR": str(model_dir),
                "MODEL_VARIANT": variant,
                "ADMIN_KEY": ADMIN_KEY,
                "MODULES_PROBE": str(tmp / "modules.txt"),
            }
            found[variant] = stack.enter_context(gunicorn_server(tmp, env, config=PROBE))
        yield found


def classify(server: Server, images: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """Probabilities for ``images`` through ``/predict`` in batches of 256."""
    session = requests.Session()
    out = []
    for start in range(0, len(images), 256):
        batch = images[start : start + 256].tolist()
        r = session.post(f"{server.url}/predict", json={"images": batch}, timeout=60)
        assert r.status_code == 200, r.text[:300]
        out.extend(p["probabilities"] for p in r.json()["predictions"])
    return np.array(out, np.float32)


def test_the_variants_give_the_same_answers_on_the_official_test_images(
    servers: dict[str, Server], trained: tuple[Path, Split]
) -> None:
    _, test = trained
    probs = {variant: classify(server, test.x) for variant, server in servers.items()}
    classes = {variant: p.argmax(axis=1) for variant, p in probs.items()}
    accuracy = {variant: float(np.mean(c == test.y)) for variant, c in classes.items()}
    agreement = {v: float(np.mean(classes[v] == classes["savedmodel"])) for v in LITE_VARIANTS}
    print(f"accuracy {accuracy}, agreement with the SavedModel {agreement}")
    assert accuracy["savedmodel"] > 0.9  # a model worth comparing
    assert agreement["tflite-float"] >= 0.999
    assert float(np.abs(probs["tflite-float"] - probs["savedmodel"]).max()) < 1e-3
    gate = EvaluateParams().lite_max_delta  # the gate evaluate reports against
    assert abs(accuracy["tflite-int8"] - accuracy["savedmodel"]) <= gate
    assert agreement["tflite-int8"] >= 0.99


def png(image: npt.NDArray[np.uint8]) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).resize((112, 112)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_route_reload_and_the_metrics_work_on_every_variant(
    servers: dict[str, Server], trained: tuple[Path, Split], variant: str
) -> None:
    model_dir, test = trained
    url, digest = servers[variant].url, read_identity(model_dir).digest
    digit = test.x[0]

    native = requests.post(f"{url}/predict", json={"image": digit.tolist()}, timeout=10)
    assert native.status_code == 200
    assert native.json()["model_version"] == digest  # one identity for every variant
    expected = native.json()["predictions"][0]["probabilities"]
    upload = requests.post(
        f"{url}/predict/image", files={"file": ("digit.png", png(digit), "image/png")}, timeout=10
    )
    assert upload.status_code == 200, upload.text
    assert upload.json()["predictions"][0]["predicted_class"] == int(test.y[0])
    tfs = requests.post(
        f"{url}/v1/models/mnist:predict", json={"instances": [digit.tolist()]}, timeout=10
    )
    assert tfs.status_code == 200
    assert np.allclose(tfs.json()["predictions"][0], expected, atol=1e-6)
    inputs = [{"name": "images", "shape": [1, 28, 28], "datatype": "UINT8",
               "data": digit.ravel().tolist()}]  # fmt: skip
    v2 = requests.post(f"{url}/v2/models/mnist/infer", json={"inputs": inputs}, timeout=10)
    assert v2.status_code == 200
    assert np.allclose(v2.json()["outputs"][0]["data"], expected, atol=1e-6)
    platform = requests.get(f"{url}/v2/models/mnist", timeout=10).json()["platform"]
    assert platform == ("tensorflow_savedmodel" if variant == "savedmodel" else "tensorflow_lite")

    metadata = requests.get(f"{url}/metadata", timeout=10).json()
    assert (metadata["variant"], metadata["model_version"]) == (variant, digest)
    admin = {"X-Admin-Key": ADMIN_KEY}
    reloaded = requests.post(f"{url}/admin/reload", json={}, headers=admin, timeout=60)
    assert reloaded.status_code == 200, reloaded.text
    assert reloaded.json()["model_version"] == digest
    after = requests.get(f"{url}/metadata", timeout=10).json()
    assert after["variant"] == variant
    assert after["load_seconds"] > 0

    metrics = requests.get(f"{url}/metrics", timeout=10).text
    assert any(
        line.startswith("mnist_predictions_total{") and f'variant="{variant}"' in line
        for line in metrics.splitlines()
    )
    assert any(
        line.startswith("mnist_model_info{") and f'variant="{variant}"' in line
        for line in metrics.splitlines()
    )

    # The prediction log records which runtime answered.
    def logged_variants() -> set[str]:
        with sqlite3.connect(servers[variant].prediction_log) as db:
            return {v for (v,) in db.execute("SELECT DISTINCT variant FROM predictions")}

    assert wait_until(logged_variants, 10, interval=0.2, what="logged rows") == {variant}


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_tflite_worker_never_imports_tensorflow(
    servers: dict[str, Server], trained: tuple[Path, Split], variant: str
) -> None:
    server = servers[variant]
    session = requests.Session()
    for _ in range(20):  # both workers answer some of them
        r = session.post(
            f"{server.url}/predict", json={"images": trained[1].x[:8].tolist()},
            headers={"Connection": "close"}, timeout=10,
        )  # fmt: skip
        assert r.status_code == 200
    probe = server.log_file.with_name("modules.txt").read_text().split()
    seen = {(int(pid), flag) for pid, flag in zip(probe[::2], probe[1::2], strict=True)}
    pids, flags = {pid for pid, _ in seen}, {flag for _, flag in seen}
    assert len(pids) == 2, seen  # both workers were probed
    # The SavedModel worker shows that the probe does see TensorFlow when it is there.
    assert flags == ({"1"} if variant == "savedmodel" else {"0"})
