"""``mnist score``: batch scoring of files, arrays and Parquet, resumable, bad files reported."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from mnist_contracts.model import load_serve, read_identity
from mnist_pipeline.models import build_model
from mnist_pipeline.ops import score
from mnist_pipeline.params import TrainParams
from mnist_pipeline.saved_model import export
from tests.support import mnist, run_mnist
from tests.support.data import make_digits

# The tests share one exported model (a module fixture): one worker builds it.
pytestmark = pytest.mark.xdist_group("score-model")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    keras.utils.set_random_seed(3)
    directory = tmp_path_factory.mktemp("score") / "mnist"
    export(build_model(TrainParams(arch="mlp", units=16)), directory)
    return directory


def rows(out: Path) -> dict[str, dict[str, object]]:
    table = pq.read_table(out)
    found = {r["id"]: r for r in table.to_pylist()}
    assert len(found) == table.num_rows  # every input once, never twice
    return found


def test_an_npz_is_scored_like_the_model_and_a_rerun_resumes(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    digits = make_digits(250, seed=4)
    source = tmp_path / "batch.npz"
    np.savez(source, x=digits.x)
    out = tmp_path / "scores"
    assert run_mnist("score", str(source), "--out", str(out), "--model", str(model_dir),
                     "--batch", "100") == 0  # fmt: skip
    assert "scored 250, failed 0" in capsys.readouterr().out
    expected = load_serve(model_dir)(digits.x)
    found = rows(out)
    assert [found[str(i)]["predicted_class"] for i in range(250)] == expected.argmax(1).tolist()
    assert found["0"]["model_version"] == read_identity(model_dir).digest
    assert found["0"]["confidence"] == pytest.approx(float(expected[0].max()), abs=1e-6)

    # Interrupted after two of its three parts: the rerun scores only what is missing.
    sorted(out.glob("part-*.parquet"))[-1].unlink()
    assert run_mnist("score", str(source), "--out", str(out), "--model", str(model_dir),
                     "--batch", "100") == 0  # fmt: skip
    assert "scored 50, failed 0 (see the error column), skipped 200" in capsys.readouterr().out
    assert len(rows(out)) == 250


def test_a_directory_with_bad_files_reports_each_and_scores_the_rest(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, image in enumerate(make_digits(3, seed=5).x):
        Image.fromarray(image).resize((84, 84)).save(folder / f"digit-{i}.png")
    (folder / "broken.png").write_bytes(b"\x89PNG not really")
    (folder / "notes.txt").write_text("not an image")
    out = tmp_path / "scores"
    assert run_mnist("score", str(folder), "--out", str(out), "--model", str(model_dir)) == 0
    assert "scored 3, failed 2" in capsys.readouterr().out
    found = rows(out)
    assert set(found) == {"digit-0.png", "digit-1.png", "digit-2.png", "broken.png", "notes.txt"}
    assert "cannot decode image" in str(found["broken.png"]["error"])
    assert "not a PNG or JPEG" in str(found["notes.txt"]["error"])
    assert found["broken.png"]["predicted_class"] is None
    assert all(found[f"digit-{i}.png"]["error"] is None for i in range(3))


def test_a_parquet_of_images_and_clear_errors(model_dir: Path, tmp_path: Path) -> None:
    digits = make_digits(20, seed=6)
    blobs = [x.tobytes() for x in digits.x] + [b"short"]
    table = pa.table({"id": [f"img{i}" for i in range(21)], "image": blobs})
    source = tmp_path / "batch.parquet"
    pq.write_table(table, source)
    out = tmp_path / "scores"
    counts = score.score(source, out, str(model_dir))
    assert counts == {"scored": 20, "failed": 1, "skipped": 0}
    assert rows(out)["img20"]["error"] == "image is not 784 bytes (uint8 28x28)"

    with pytest.raises(score.PipelineError, match="no such file or directory"):
        score.score(tmp_path / "missing.npz", out, str(model_dir))
    (tmp_path / "data.csv").write_text("x\n")
    with pytest.raises(score.PipelineError, match="a directory of images, an .npz or a .parquet"):
        score.score(tmp_path / "data.csv", out, str(model_dir))
    np.savez(tmp_path / "wrong.npz", x=np.zeros((2, 5, 5), np.float32))
    with pytest.raises(score.PipelineError, match=r"'x' must be uint8\[N,28,28\]"):
        score.score(tmp_path / "wrong.npz", out, str(model_dir))


def test_the_command_line_fails_in_one_line(tmp_path: Path) -> None:
    import subprocess

    result = subprocess.run(
        mnist("score", str(tmp_path / "nothing"), "--out", str(tmp_path / "o"),
              "--model", str(tmp_path / "nomodel")),
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert result.stderr.startswith("mnist score: error:")


@pytest.mark.slow
@pytest.mark.spark
def test_spark_local2_gives_the_local_engines_answers(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    import mlflow

    from mnist_pipeline.stages.register import log_model

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("SPARK_MASTER", "local[2]")
    with mlflow.start_run():
        version = log_model(model_dir, "mnist-classifier", np.zeros((1, 28, 28), np.uint8))
    uri = f"models:/mnist-classifier/{version}"
    digits = make_digits(2000, seed=7)
    source = tmp_path / "batch.npz"
    np.savez(source, x=digits.x)
    seconds = {}
    for engine in ("local", "spark"):
        started = time.perf_counter()
        counts = score.score(source, tmp_path / engine, uri, batch=1000, engine=engine)
        seconds[engine] = time.perf_counter() - started
        assert counts == {"scored": 2000, "failed": 0, "skipped": 0}
    local, spark = rows(tmp_path / "local"), rows(tmp_path / "spark")
    assert set(local) == set(spark)
    assert all(local[i]["predicted_class"] == spark[i]["predicted_class"] for i in local)
    assert all(
        local[i]["confidence"] == pytest.approx(spark[i]["confidence"], abs=1e-5) for i in local
    )
    assert {r["model_version"] for r in spark.values()} == {read_identity(model_dir).digest}
    print(
        "images/s (2,000 images, 2 cores, model load included): "
        + ", ".join(f"{e} {2000 / s:.0f}" for e, s in seconds.items())
    )
