"""The model's one identity travels inside the export and survives copies, not tampering."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from mnist_contracts.model import IDENTITY_FILE, content_version, read_identity, write_identity


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
