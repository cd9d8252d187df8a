"""The report's cost section: ratios when both models are there, a plain reason when not."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mnist_pipeline.markdown import rows
from mnist_pipeline.ops.report_cost import Cost, cost_section, fetch_model


def test_both_sides_give_ratios() -> None:
    base = Cost(
        size_bytes=2_000_000,
        single_ms=0.5,
        batch_images_per_s=20_000,
        single_p99_ms=0.9,
        single_per_s=1_900,
    )
    new = Cost(
        size_bytes=1_000_000,
        single_ms=1.5,
        batch_images_per_s=10_000,
        single_p99_ms=2.7,
        single_per_s=600,
    )
    text = cost_section(base, new, "")
    assert ["model size", "2.00 MB", "1.00 MB", "**0.50x**"] in rows(text)
    assert ["single image (median)", "0.500 ms", "1.500 ms", "**3.00x**"] in rows(text)
    assert ["single image (p99)", "0.900 ms", "2.700 ms", "**3.00x**"] in rows(text)
    assert ["batch of 256", "20,000 images/s", "10,000 images/s", "**0.50x**"] in rows(text)


def test_a_missing_base_is_unavailable_and_never_retrained() -> None:
    new = Cost(
        size_bytes=1_000_000,
        single_ms=1.0,
        batch_images_per_s=10_000,
        single_p99_ms=2.0,
        single_per_s=900,
    )
    text = cost_section(None, new, "not in the DVC cache or remote")
    assert ["model size", "unavailable", "1.00 MB", "-"] in rows(text)
    assert "never trained again" in text


def test_a_revision_whose_model_cannot_be_fetched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    monkeypatch.chdir(tmp_path)
    model, why = fetch_model("HEAD", tmp_path / "get")
    assert model is None
    assert "DVC cache or remote" in why
    model, why = fetch_model(None, tmp_path / "get")  # the workspace has no export either
    assert model is None
    assert "no models/mnist" in why
