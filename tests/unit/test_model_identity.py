"""The model's one identity travels inside the export and survives copies, not tampering."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mnist_contracts.lite import LiteModel, lite_digests, lite_file, read_variant_identity
from mnist_contracts.model import (
    IDENTITY_FILE,
    NotAModelError,
    content_version,
    read_identity,
    write_identity,
)


def fake_export(path: Path, weights: bytes) -> Path:
    (path / "variables").mkdir(parents=True)
    (path / "variables" / "variables.data-00000-of-00001").write_bytes(weights)
    return path


def test_identity_is_written_into_the_export_and_read_back_from_a_copy(tmp_path: Path) -> None:
    model = fake_export(tmp_path / "a", b"weights")
    written = write_identity(model, "sha256:params")
    copy = tmp_path / "elsewhere" / "mnist"
    shutil.copytree(model, copy)
    assert read_identity(copy) == written
    assert written.digest == content_version(model)
    assert json.loads((copy / IDENTITY_FILE).read_text())["params_digest"] == "sha256:params"


def test_an_export_without_identity_or_with_a_false_one_gets_its_computed_digest(
    tmp_path: Path,
) -> None:
    old = fake_export(tmp_path / "old", b"weights")
    assert read_identity(old).digest == content_version(old)
    assert read_identity(old).params_digest == "unknown"
    write_identity(old, "sha256:params")
    (old / "variables" / "variables.data-00000-of-00001").write_bytes(b"other weights")
    # The variables are the model: a stale file beside them does not rename it.
    assert read_identity(old).digest == content_version(old)
    assert read_identity(old).params_digest == "unknown"
    (old / IDENTITY_FILE).write_text("{not json")
    assert read_identity(old).digest == content_version(old)


def test_a_tflite_variant_has_the_exports_identity_and_a_tampered_file_is_refused(
    tmp_path: Path,
) -> None:
    model = fake_export(tmp_path / "a", b"weights")
    lite = lite_file(model, "tflite-int8")
    lite.parent.mkdir()
    lite.write_bytes(b"flatbuffer")
    written = write_identity(model, "sha256:params", lite_digests(model))
    assert read_variant_identity(model, "tflite-int8") == written
    # The slim image carries no variables: the recorded digest names the model.
    slim = tmp_path / "slim"
    (slim / IDENTITY_FILE).parent.mkdir(parents=True)
    shutil.copy(model / IDENTITY_FILE, slim / IDENTITY_FILE)
    shutil.copytree(lite.parent, slim / "lite")
    assert read_variant_identity(slim, "tflite-int8") == written
    with pytest.raises(NotAModelError, match="no tflite-float model"):
        read_variant_identity(slim, "tflite-float")
    (slim / "lite" / lite.name).write_bytes(b"another flatbuffer")
    with pytest.raises(NotAModelError, match="not the file this export recorded"):
        read_variant_identity(slim, "tflite-int8")
    (model / "variables" / "variables.data-00000-of-00001").write_bytes(b"other weights")
    with pytest.raises(NotAModelError, match="variables do not match"):
        read_variant_identity(model, "tflite-int8")


def test_litert_refuses_a_file_that_is_not_a_model(tmp_path: Path) -> None:
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"not a flatbuffer at all")
    with pytest.raises(NotAModelError, match="LiteRT cannot load it"):
        LiteModel(junk)
    with pytest.raises(NotAModelError, match="no TFLite model"):
        LiteModel(tmp_path / "missing.tflite")
