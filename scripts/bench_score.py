"""Benchmark batch scoring: images/s of ``mnist score`` on the local engine against Spark.

Registers the repository's exported model (``models/mnist``, from ``make repro``) in a throwaway
MLflow store, writes the first ``--images`` official test images as an ``.npz``, and scores it
into Parquet with each engine: ``local`` (the model in this process) and ``spark``
(``mlflow.pyfunc.spark_udf`` on ``SPARK_MASTER``, default ``local[2]``). Each engine scores the
batch twice: a small batch first, whose time includes the start-up (for Spark, the session and
its Python workers), then the whole batch, whose images/s is what a long batch runs at. It
checks that the two engines agree on every class.

Writes ``reports/bench_score.json``. Usage: ``make bench-score`` (after ``make repro`` and
``make setup-spark``; Java 17 for Spark).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from provenance import provenance

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "reports" / "bench_score.json"


def register(model_dir: Path, store: Path) -> str:
    """Register ``model_dir`` in a SQLite store at ``store``; return its ``models:/`` URI."""
    import mlflow

    from mnist_pipeline.stages.register import log_model

    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{store}"
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    with mlflow.start_run():
        version = log_model(model_dir, "mnist-classifier", np.zeros((1, 28, 28), np.uint8))
    return f"models:/mnist-classifier/{version}"


def timed(source: Path, out: Path, uri: str, engine: str, batch: int) -> float:
    """Seconds to score ``source`` into a new ``out`` with ``engine``."""
    from mnist_pipeline.ops import score

    started = time.perf_counter()
    counts = score.score(source, out, uri, batch=batch, engine=engine)
    seconds = time.perf_counter() - started
    if counts["failed"] or counts["skipped"]:
        sys.exit(f"{engine}: unexpected counts {counts}")
    return seconds


def classes(out: Path) -> dict[str, int]:
    """The predicted class of every id in the Parquet dataset ``out``."""
    import pyarrow.parquet as pq

    table = pq.read_table(out, columns=["id", "predicted_class"])
    return dict(zip(table["id"].to_pylist(), table["predicted_class"].to_pylist(), strict=True))


def main() -> None:
    """Score with each engine; write ``reports/bench_score.json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10000, help="the large batch (<= 10,000)")
    parser.add_argument("--small", type=int, default=1000, help="the small batch")
    parser.add_argument("--batch", type=int, default=1000, help="images per model call and part")
    args = parser.parse_args()
    model_dir, raw = ROOT / "models/mnist", ROOT / "data/raw/mnist.npz"
    if not model_dir.is_dir() or not raw.is_file():
        sys.exit("models/mnist or data/raw/mnist.npz is missing: run `make repro` first")
    if shutil.which("java") is None:
        sys.exit("Spark needs Java 17: apt-get install openjdk-17-jre-headless")
    sys.path.insert(0, str(ROOT / "src"))
    with np.load(raw) as data:
        x, y = data["x_test"][: args.images], data["y_test"][: args.images]
    os.environ.setdefault("SPARK_MASTER", "local[2]")
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-score-") as tmp:
        work = Path(tmp)
        uri = register(model_dir, work / "mlflow.db")
        sources = {}
        for n in (args.small, args.images):
            sources[n] = work / f"batch-{n}.npz"
            np.savez(sources[n], x=x[:n], ids=np.array([f"test-{i:05d}" for i in range(n)]))
        answers = {}
        for engine in ("local", "spark"):
            small = timed(sources[args.small], work / f"{engine}-small", uri, engine, args.batch)
            large = timed(sources[args.images], work / f"{engine}-large", uri, engine, args.batch)
            answers[engine] = classes(work / f"{engine}-large")
            predicted = np.array([answers[engine][f"test-{i:05d}"] for i in range(args.images)])
            results[engine] = {
                f"first_call_s_{args.small}_images": round(small, 2),
                "wall_s": round(large, 2),
                "images_per_s": round(args.images / large, 1),
                "test_accuracy": round(float(np.mean(predicted == y)), 4),
            }
    same = sum(answers["local"][i] == answers["spark"][i] for i in answers["local"])
    report = {
        **provenance(),
        "images": args.images,
        "batch": args.batch,
        "spark_master": os.environ["SPARK_MASTER"],
        "local": results["local"],
        "spark": results["spark"],
        "identical_classes": f"{same} of {args.images}",
        "note": (
            f"first_call_s: scoring {args.small} images first, start-up included (Spark: the "
            "session and its Python workers, each importing TensorFlow); wall_s and images_per_s: "
            "the whole batch after it (each call still loads the model)"
        ),
    }
    OUT.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
