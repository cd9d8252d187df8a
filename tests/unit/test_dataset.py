import re
from pathlib import Path

import numpy as np
import pytest

from mnist_pipeline.dataset import (
    Split,
    check_disjoint,
    check_split,
    class_counts,
    load_split,
    save_split,
)
from mnist_pipeline.errors import PipelineError
from tests.support.data import make_digits


def test_well_formed_split_passes() -> None:
    check_split("train", make_digits(50, seed=0), expected_size=50)


@pytest.mark.parametrize(
    ("split", "message"),
    [
        (Split(np.zeros((10, 28, 28), np.float32), np.arange(10, dtype=np.uint8)), "uint8"),
        (Split(np.zeros((10, 28, 27), np.uint8), np.arange(10, dtype=np.uint8)), "[N,28,28]"),
        (Split(np.zeros((10, 28, 28), np.uint8), np.arange(9, dtype=np.uint8)), "10 images"),
        (Split(np.zeros((11, 28, 28), np.uint8), np.arange(11, dtype=np.uint8)), "outside 0-9"),
        (Split(np.zeros((9, 28, 28), np.uint8), np.arange(9, dtype=np.uint8)), "class(es) [9]"),
    ],
)
def test_malformed_split_fails_loudly(split: Split, message: str) -> None:
    with pytest.raises(PipelineError, match=re.escape(message)):
        check_split("train", split)


def test_wrong_size_fails() -> None:
    with pytest.raises(PipelineError, match="expected 60000 examples, got 50"):
        check_split("raw train", make_digits(50, seed=0), expected_size=60000)


def test_an_image_in_two_splits_is_caught() -> None:
    a, b = make_digits(30, seed=0), make_digits(30, seed=1)
    check_disjoint({"train": a, "val": b})
    leaked = Split(np.concatenate([b.x, a.x[:1]]), np.concatenate([b.y, a.y[:1]]))
    with pytest.raises(PipelineError, match="in both train and val"):
        check_disjoint({"train": a, "val": leaked})


def test_class_counts() -> None:
    assert class_counts(np.array([0, 0, 3, 9], np.uint8)) == [2, 0, 0, 1, 0, 0, 0, 0, 0, 1]


def test_split_round_trip_and_missing_file(tmp_path: Path) -> None:
    split = make_digits(20, seed=3)
    save_split(split, tmp_path / "val.npz")
    loaded = load_split("val", tmp_path)
    np.testing.assert_array_equal(loaded.x, split.x)
    np.testing.assert_array_equal(loaded.y, split.y)
    with pytest.raises(PipelineError, match=r"test.npz: not found; run the previous stage"):
        load_split("test", tmp_path)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(PipelineError, match="not a valid data file"):
        load_split("bad", tmp_path)
