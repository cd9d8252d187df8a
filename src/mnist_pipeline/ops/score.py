"""``mnist score``: score a batch of images with the registered (or an exported) model.

Input: a directory of image files (PNG/JPEG, read as the service's image route reads an upload),
an ``.npz`` with ``x`` ``uint8[N,28,28]`` (and optional ``ids``), or a Parquet file with ``id``
and ``image`` (784 bytes) columns. Output: a Parquet dataset (a directory of parts) with one row
per input: ``id``, ``predicted_class``, ``confidence``, ``model_version`` (the model's digest),
``model_source`` and ``error`` (null, or why that one input could not be scored).

Resumable: every batch is committed as its own part file (written atomically), and a rerun into
the same output skips the ids already there. A bad file is reported in its row and counted in
the summary; it never stops the batch.

Engines: ``local`` runs the model in this process; ``spark`` runs the same registered model
through ``mlflow.pyfunc.spark_udf`` on a Spark cluster (``SPARK_MASTER``, default ``local[2]``)
and writes the same rows. Spark is an optional extra with its own lock
(``requirements-spark.lock``: ``pyspark``; Java 17 from the system).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from mnist_contracts.image_input import ImageInputError, image_to_mnist
from mnist_contracts.model import IMAGE_SHAPE, NotAModelError
from mnist_contracts.registered import ModelFunction, load_model_function
from mnist_pipeline.atomic import atomic_path
from mnist_pipeline.errors import PipelineError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
COLUMNS = ("id", "predicted_class", "confidence", "model_version", "model_source", "error")


@dataclass(frozen=True)
class Item:
    """One input: its id, and either its pixels or why it has none."""

    id: str
    image: npt.NDArray[np.uint8] | None
    error: str | None = None


def read_items(source: Path) -> Iterator[Item]:
    """The inputs of ``source`` in a stable order (files by name, arrays by position).

    Raises:
        PipelineError: If ``source`` is missing or of a kind that cannot be read at all.
    """
    if source.is_dir():
        for path in sorted(p for p in source.iterdir() if p.is_file()):
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                yield Item(
                    path.name, None, f"not a PNG or JPEG file ({path.suffix or 'no suffix'})"
                )
                continue
            try:
                yield Item(path.name, image_to_mnist(path.read_bytes()))
            except (ImageInputError, OSError) as err:
                yield Item(path.name, None, str(err))
        return
    if not source.is_file():
        raise PipelineError(f"{source}: no such file or directory")
    if source.suffix == ".npz":
        yield from _npz_items(source)
    elif source.suffix == ".parquet":
        yield from _parquet_items(source)
    else:
        raise PipelineError(f"{source}: score a directory of images, an .npz or a .parquet file")


def _npz_items(source: Path) -> Iterator[Item]:
    try:
        with np.load(source, allow_pickle=False) as data:
            x = np.asarray(data["x"])
            ids = [str(i) for i in data["ids"]] if "ids" in data else None
    except (OSError, ValueError, KeyError) as err:
        raise PipelineError(f"{source}: not an .npz with an 'x' array ({err})") from None
    if x.dtype != np.uint8 or x.shape[1:] != IMAGE_SHAPE:
        raise PipelineError(f"{source}: 'x' must be uint8[N,28,28], got {x.dtype}{list(x.shape)}")
    for i, image in enumerate(x):
        yield Item(ids[i] if ids is not None else str(i), image)


def _parquet_items(source: Path) -> Iterator[Item]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(source, columns=["id", "image"])
    except (OSError, ValueError, KeyError) as err:
        raise PipelineError(f"{source}: not a Parquet file with id and image ({err})") from None
    for item_id, blob in zip(table["id"].to_pylist(), table["image"].to_pylist(), strict=True):
        if not isinstance(blob, bytes) or len(blob) != IMAGE_SHAPE[0] * IMAGE_SHAPE[1]:
            yield Item(str(item_id), None, "image is not 784 bytes (uint8 28x28)")
        else:
            yield Item(str(item_id), np.frombuffer(blob, np.uint8).reshape(IMAGE_SHAPE))


def done_ids(out: Path) -> set[str]:
    """The ids already scored into ``out`` (empty when it does not exist yet)."""
    import pyarrow.parquet as pq

    if not out.is_dir():
        return set()
    return {
        str(i)
        for part in sorted(out.glob("part-*.parquet"))
        for i in pq.read_table(part, columns=["id"])["id"].to_pylist()
    }


def write_part(out: Path, rows: list[dict[str, object]]) -> Path:
    """Commit one batch of rows as the next part file, atomically (a crash leaves no half part)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out.mkdir(parents=True, exist_ok=True)
    number = len(list(out.glob("part-*.parquet")))
    path = out / f"part-{number:05d}.parquet"
    schema = pa.schema([
        ("id", pa.string()), ("predicted_class", pa.int16()), ("confidence", pa.float32()),
        ("model_version", pa.string()), ("model_source", pa.string()), ("error", pa.string()),
    ])  # fmt: skip
    table = pa.Table.from_pylist(rows, schema=schema)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return path


def score_batch(items: list[Item], model: ModelFunction, source: str) -> list[dict[str, object]]:
    """Rows for ``items``: the good ones through the model in one call, the bad ones as errors."""
    good = {n: i.image for n, i in enumerate(items) if i.image is not None}
    probs = model.predict(np.stack(list(good.values()))) if good else None
    answers = {} if probs is None else dict(zip(good, probs, strict=True))
    return rows_for(items, answers, model.version, source)


def rows_for(
    items: list[Item],
    answers: dict[int, npt.NDArray[np.float32]],
    version: str,
    source: str,
) -> list[dict[str, object]]:
    """One output row per item, from the probabilities of the items (by position) that had any."""
    rows: list[dict[str, object]] = []
    for n, item in enumerate(items):
        p = answers.get(n)
        rows.append({
            "id": item.id,
            "predicted_class": None if p is None else int(p.argmax()),
            "confidence": None if p is None else float(p.max()),
            "model_version": version, "model_source": source, "error": item.error,
        })  # fmt: skip
    return rows


Scorer = Callable[[list[Item]], list[dict[str, object]]]


def local_scorer(model_uri: str) -> Scorer:
    """Batches through the model in this process."""
    try:
        model = load_model_function(model_uri)
    except NotAModelError as err:
        raise PipelineError(str(err)) from None
    return lambda items: score_batch(items, model, model_uri)


def spark_scorer(model_uri: str) -> Scorer:
    """Batches through ``mlflow.pyfunc.spark_udf`` on Spark: the same model, the same rows.

    Raises:
        PipelineError: If pyspark is missing or the model is not a registered (MLflow) model.
    """
    if not model_uri.startswith(("models:/", "runs:/")):
        raise PipelineError(
            "--engine spark scores an MLflow model (models:/NAME@ALIAS): spark_udf cannot load "
            "a bare SavedModel directory"
        )
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise PipelineError(
            "--engine spark needs pyspark: .venv/bin/pip install -r requirements-spark.lock"
        ) from None
    import mlflow

    from mnist_contracts.model import read_identity
    from mnist_contracts.registered import download_saved_model

    with tempfile.TemporaryDirectory(prefix="mnist-score-") as tmp:
        version = read_identity(download_saved_model(model_uri, Path(tmp))).digest
    master = os.environ.get("SPARK_MASTER", "local[2]")
    spark = SparkSession.builder.master(master).appName("mnist score").getOrCreate()
    udf = mlflow.pyfunc.spark_udf(spark, model_uri, result_type="array<float>", env_manager="local")

    def run(items: list[Item]) -> list[dict[str, object]]:
        good = [(n, i.image) for n, i in enumerate(items) if i.image is not None]
        answers: dict[int, npt.NDArray[np.float32]] = {}
        if good:
            frame = spark.createDataFrame(
                [(n, image.ravel().tolist()) for n, image in good], "n int, pixels array<int>"
            )
            for row in frame.select("n", udf("pixels").alias("p")).collect():
                answers[row["n"]] = np.asarray(row["p"], np.float32)
        return rows_for(items, answers, version, model_uri)

    return run


def score(
    source: Path, out: Path, model_uri: str, batch: int = 1024, engine: str = "local"
) -> dict[str, int]:
    """Score ``source`` into ``out`` with ``model_uri``, skipping what ``out`` already holds.

    Returns:
        Counts: ``scored`` now, ``failed`` now (bad inputs), ``skipped`` (done before).

    Raises:
        PipelineError: If the input or the model cannot be read.
    """
    from tqdm import tqdm

    scorer = spark_scorer(model_uri) if engine == "spark" else local_scorer(model_uri)
    done = done_ids(out)
    counts = {"scored": 0, "failed": 0, "skipped": 0}
    pending: list[Item] = []

    def flush() -> None:
        rows = scorer(pending)
        write_part(out, rows)
        counts["failed"] += sum(r["error"] is not None for r in rows)
        counts["scored"] += sum(r["error"] is None for r in rows)
        pending.clear()

    with tqdm(read_items(source), unit="image", desc="mnist score") as progress:
        for item in progress:
            if item.id in done:
                counts["skipped"] += 1
                continue
            if item.error is not None:
                log.warning("%s: %s", item.id, item.error)
            pending.append(item)
            if len(pending) >= batch:
                flush()
    if pending:
        flush()
    return counts
