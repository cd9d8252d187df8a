"""Drift must be real, both ways: official test digits through the real service's log.

The reference is built from real MNIST validation images by the reference stage; live traffic
goes through the Flask app into its SQLite prediction log; `mnist monitor` compares them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from app import lifecycle
from app.settings import Settings
from mnist_pipeline.dataset import Split
from mnist_pipeline.ops import monitor
from tests.support import run_mnist
from tests.support.drift_world import build_drift_world
from tests.support.redis_server import RedisServer
from tests.support.serving import Serve, started

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("drift-world")]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Real MNIST, a small trained model, and the reference stage's output."""
    return build_drift_world(tmp_path_factory.mktemp("drift"), {"reference_size": 1000})


def serve_and_log(world: dict[str, object], images: np.ndarray, name: str) -> Path:
    """Send ``images`` through the real app; return its prediction log once drained."""
    root = world["root"]
    assert isinstance(root, Path)
    log = root / f"{name}.db"
    settings = Settings(
        model_dir=root / "models/mnist",
        prediction_log=log,
        state_dir=root / "state",
        metrics_file=root / "none.json",
    )
    with started(settings) as app:  # stopped: every answered prediction is in the log
        client = app.test_client()
        for start in range(0, len(images), 100):
            batch = images[start : start + 100].tolist()
            assert client.post("/predict", json={"images": batch}).status_code == 200
    return log


def run_monitor(
    world: dict[str, object], log: Path, events: str | None = None
) -> tuple[int, dict[str, object]]:
    """Check ``log`` (or the ``events`` source) against the world's reference: (status, report)."""
    root = world["root"]
    assert isinstance(root, Path)
    out = root / f"out-{log.stem}"
    code = monitor.check(
        monitor.CheckOptions(
            events=events or str(log),
            reference=root / "data/reference",
            out=out,
            params=root / "params.yaml",
        )
    )
    report = json.loads((out / "drift.json").read_text()) if (out / "drift.json").exists() else {}
    return code, report


def sample(world: dict[str, object], n: int = 400, seed: int = 0) -> np.ndarray:
    test = world["test"]
    assert isinstance(test, Split)
    rng = np.random.default_rng(seed)
    return test.x[rng.choice(len(test), n, replace=False)]


def rotate(images: np.ndarray) -> np.ndarray:
    angles = np.random.default_rng(1).uniform(30, 45, len(images)) * np.random.default_rng(
        2
    ).choice([-1, 1], len(images))
    return np.stack(
        [
            ndimage.rotate(img, a, reshape=False, order=1)
            for img, a in zip(images, angles, strict=True)
        ]
    )


def thicken(images: np.ndarray) -> np.ndarray:
    return np.stack([ndimage.grey_dilation(img, size=(3, 3)) for img in images])


def noise(images: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(3)
    return np.clip(images + rng.normal(0, 70, images.shape), 0, 255).astype(np.uint8)


def test_in_distribution_is_not_drift(world: dict[str, object]) -> None:
    code, report = run_monitor(world, serve_and_log(world, sample(world), "clean"))
    assert code == monitor.NO_DRIFT, report
    assert report["verdict"] == "no drift"
    assert report["sample_sizes"] == {"current": 400, "reference": 1000}
    html = Path(world["root"]) / "out-clean/drift.html"  # type: ignore[arg-type]
    assert html.stat().st_size > 10_000


@pytest.mark.parametrize(
    ("name", "shift", "expected"),
    [
        ("inverted", lambda x: 255 - x, {"mean_intensity", "ink_share"}),
        ("rotated", rotate, {"bbox_width"}),
        ("thickened", thicken, {"stroke_thickness", "ink_share"}),
        ("noisy", noise, {"mean_intensity"}),
    ],
)
def test_shifted_inputs_are_drift_and_the_right_features_are_named(
    world: dict[str, object],
    name: str,
    shift: Callable[[np.ndarray], np.ndarray],
    expected: set[str],
) -> None:
    code, report = run_monitor(world, serve_and_log(world, shift(sample(world)), name))
    assert code == monitor.DRIFT, report
    assert expected <= set(report["drifted_columns"]), report["drifted_columns"]


def test_a_class_skewed_stream_is_drift(world: dict[str, object]) -> None:
    test = world["test"]
    assert isinstance(test, Split)
    ones_and_sevens = test.x[np.isin(test.y, [1, 7])][:400]
    code, report = run_monitor(world, serve_and_log(world, ones_and_sevens, "skewed"))
    assert code == monitor.DRIFT
    assert "predicted_class" in report["drifted_columns"]


def test_the_service_exposes_the_latest_verdict(world: dict[str, object], serve: Serve) -> None:
    root = Path(world["root"])  # type: ignore[arg-type]
    log = serve_and_log(world, 255 - sample(world, 300, seed=5), "for-gauge")
    run_monitor(world, log)
    app = serve(
        Settings(
            model_dir=root / "models/mnist",
            prediction_log=root / "g.db",
            state_dir=root / "state",
            drift_report=root / "out-for-gauge/drift.json",
        )
    )
    text = app.test_client().get("/metrics").get_data(as_text=True)
    assert "mnist_drift_detected 1.0" in text
    assert "mnist_drift_share" in text


def test_bad_inputs_exit_2_with_one_line(
    world: dict[str, object], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = Path(world["root"])  # type: ignore[arg-type]
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"not sqlite at all" * 100)
    small = serve_and_log(world, sample(world, 50, seed=9), "small")
    capsys.readouterr()  # the app's own log lines
    cases = [
        (["--events", str(tmp_path / "missing.db")], 2, "no prediction log"),
        (["--events", str(corrupt)], 2, "not a readable prediction log"),
        (["--events", str(small), "--reference", str(tmp_path / "none")], 2, "no reference"),
        (
            ["--events", str(small), "--model-version", "sha256:000000000000"],
            2,
            "no predictions of model",
        ),
        (["--events", str(small)], 3, "only 50 predictions"),
    ]
    for args, status, message in cases:
        out = tmp_path / "out"
        argv = [
            "monitor",
            "--reference",
            str(root / "data/reference"),
            "--params",
            str(root / "params.yaml"),
            "--out",
            str(out),
            *args,
        ]
        assert run_mnist(*argv) == status, args
        err = capsys.readouterr().err
        assert message in err, err
        assert err.count("\n") == 1, err
        assert not out.exists() or not any(out.iterdir())  # no partial report files


@pytest.mark.redis
def test_the_stream_gives_the_logs_verdict_live_accuracy_and_every_replicas_gauges(
    world: dict[str, object], redis_broker: RedisServer, serve: Serve
) -> None:
    """The same traffic through the stream and through the log: one verdict; labels count."""
    root = Path(world["root"])  # type: ignore[arg-type]
    test = world["test"]
    assert isinstance(test, Split)
    pick = np.random.default_rng(7).choice(len(test), 300, replace=False)
    images, labels = test.x[pick], test.y[pick].tolist()
    results = {}
    for name, events_url in (("log", None), ("stream", redis_broker.url)):
        app = serve(Settings(
            model_dir=root / "models/mnist", prediction_log=root / f"live-{name}.db",
            state_dir=root / "state", metrics_file=root / "none.json", events_url=events_url,
        ))  # fmt: skip
        client = app.test_client()
        right = 0
        answers = [p for start in (0, 150) for p in client.post(
            "/predict", json={"images": images[start : start + 150].tolist()}
        ).get_json()["predictions"]]  # fmt: skip
        for answer, label in zip(answers[:200], labels, strict=False):
            sent = client.post("/feedback", json={"event_id": answer["event_id"], "label": label})
            assert sent.status_code == 200
            right += answer["predicted_class"] == label
        lifecycle.stop(app)  # everything answered is written before the monitor reads it
        source = str(root / f"live-{name}.db") if events_url is None else events_url
        code, report = run_monitor(
            world, Path(source) if events_url is None else Path(name), events=source
        )
        results[name] = (code, report, right)
    (log_code, log_report, right), (stream_code, stream_report, _) = results.values()
    assert stream_code == log_code == monitor.NO_DRIFT
    assert stream_report["columns"] == log_report["columns"]
    live = stream_report["live"]
    assert live == log_report["live"]
    assert live["labelled"] == 200
    assert live["accuracy"] == pytest.approx(right / 200)
    assert (root / "out-stream/classification.html").stat().st_size > 10_000

    # A replica with no shared disk reads the report from the broker.
    replica = serve(Settings(
        model_dir=root / "models/mnist", prediction_log=root / "r.db", state_dir=root / "state",
        events_url=redis_broker.url, drift_report=root / "absent.json",
    ))  # fmt: skip
    text = replica.test_client().get("/metrics").get_data(as_text=True)
    assert f"mnist_live_accuracy {right / 200}" in text
    assert "mnist_live_labelled 200.0" in text
    assert "mnist_live_accuracy_min 0.97" in text
    # ... and the accuracy estimated without labels, inside its own interval.
    estimated = stream_report["estimated"]
    assert estimated["count"] >= stream_report["sample_sizes"]["current"]
    assert estimated["low"] <= estimated["accuracy"] <= estimated["high"]
    assert f'mnist_estimated_accuracy{{bound="expected"}} {estimated["accuracy"]}' in text
    severity = stream_report["severity"]  # graded by harm; the gauge carries its code
    assert severity == log_report["severity"]
    assert f"mnist_monitor_severity {float(severity['code'])}" in text
    assert "mnist_drift_detected 0.0" in text
