"""Each stage's ``main`` on tiny data built in the test, writing real files."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from mnist_pipeline import saved_model
from mnist_pipeline.errors import PipelineError
from mnist_pipeline.robustness import descriptions
from tests.support.stages import run_evaluate, run_preprocess, run_stage_process, run_train


def test_preprocess_writes_splits_and_report(workdir: Path) -> None:
    run_preprocess(workdir)
    assert sorted(p.name for p in (workdir / "data/prepared").iterdir()) == [
        "test.npz",
        "train.npz",
        "val.npz",
    ]
    report = json.loads((workdir / "reports/data.json").read_text())
    assert {k: v["count"] for k, v in report.items()} == {"train": 480, "val": 120, "test": 200}


def test_preprocess_on_a_corrupt_raw_file_writes_nothing(workdir: Path) -> None:
    (workdir / "data/raw/mnist.npz").write_bytes(b"garbage")
    with pytest.raises(PipelineError, match="not a valid data file"):
        run_preprocess(workdir)
    assert not (workdir / "data/prepared").exists()
    assert not (workdir / "reports").exists()


@pytest.mark.slow
def test_train_then_evaluate_the_exported_model(workdir: Path) -> None:
    run_preprocess(workdir)
    run_train(workdir)

    model_dir = workdir / "models/mnist"
    loaded = tf.saved_model.load(str(model_dir))
    spec = loaded.serve.concrete_functions[0].structured_input_signature[0][0]
    assert spec.dtype == tf.uint8
    assert spec.shape.as_list() == [None, 28, 28]

    # One step per epoch, for every curve that `dvc plots show` draws.
    for name in ("train/loss", "val/loss", "train/accuracy", "val/accuracy"):
        rows = (workdir / f"reports/train/plots/metrics/{name}.tsv").read_text().splitlines()
        assert len(rows) == 1 + 2, name

    run_evaluate(workdir)
    metrics = json.loads((workdir / "reports/metrics.json").read_text())["test"]
    assert metrics["count"] == 200
    assert metrics["accuracy"] > 0.8  # the synthetic classes are easy to separate
    assert set(metrics["per_class"]) == {str(c) for c in range(10)}
    # The TFLite variants: scored like the SavedModel; float agrees, int8 is several times smaller.
    everything = json.loads((workdir / "reports/metrics.json").read_text())
    assert everything["tflite-float"]["agreement"] >= 0.995
    assert abs(everything["tflite-int8"]["accuracy_delta"]) <= 0.02
    compression = json.loads((workdir / "reports/compression.json").read_text())
    sizes = compression["size_bytes"]
    assert sizes["tflite-int8"] * 2 < sizes["tflite-float"]
    assert set(sizes) == {"savedmodel", "tflite-float", "tflite-int8"}
    assert set(compression) == {"size_bytes", "gzip_bytes", "kernel_sparsity"}  # no latencies
    assert set(compression["gzip_bytes"]) == set(sizes)
    assert compression["gzip_bytes"]["tflite-float"] < sizes["tflite-float"]
    assert compression["kernel_sparsity"] < 0.01  # not pruned: hardly a weight is exactly zero
    rows = json.loads((workdir / "reports/plots/confusion.json").read_text())
    assert len(rows) == 200
    assert sum(r["actual"] != r["predicted"] for r in rows) == metrics["errors"]
    assert (workdir / "reports/plots/mistakes.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Robustness: every shift scored; the unchanged set scores the plain accuracy.
    shifted = json.loads((workdir / "reports/robustness.json").read_text())["robustness"]
    assert list(shifted) == list(descriptions())
    assert shifted["identity"] == {"accuracy": metrics["accuracy"], "change": 0.0}

    # The exported graph normalises by itself: raw uint8 in, the evaluated probabilities out.
    test = np.load(workdir / "data/prepared/test.npz")
    probs = saved_model.load(model_dir)(test["x"])
    assert (probs.argmax(1) == test["y"]).mean() == pytest.approx(metrics["accuracy"])


@pytest.mark.slow
def test_same_params_give_the_same_model_and_metrics(workdir: Path) -> None:
    """What ``dvc repro -f`` twice does: fresh processes, same params, byte-identical results."""
    run_preprocess(workdir)
    results = []
    for _ in range(2):
        run_stage_process(workdir, "train")
        run_stage_process(workdir, "evaluate")
        # Every file of the model and of the reports, fingerprint.pb included.
        results.append(
            {
                str(p.relative_to(workdir)): hashlib.sha256(p.read_bytes()).hexdigest()
                for top in ("models", "reports")
                for p in sorted((workdir / top).rglob("*"))
                if p.is_file()
            }
        )
    assert "models/mnist/fingerprint.pb" in results[0]
    assert results[0] == results[1]
    # Still a fingerprint TensorFlow reads, with a content-derived id.
    fingerprint = tf.saved_model.experimental.read_fingerprint(str(workdir / "models/mnist"))
    assert fingerprint.saved_model_checksum


def test_evaluate_without_a_model_says_what_to_run(workdir: Path) -> None:
    run_preprocess(workdir)
    with pytest.raises(PipelineError, match="no SavedModel found; run the train stage"):
        run_evaluate(workdir)
    assert not (workdir / "reports/metrics.json").exists()
