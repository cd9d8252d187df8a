"""The robustness shifts: deterministic, doing what their names say, scored against identity."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from mnist_pipeline.robustness import off_centre, rotate, scale, score, shifts, strokes


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    """64 clean 'digits': bright blocks of several sizes inside MNIST's 20x20 box, no noise."""
    rng = np.random.default_rng(3)
    images = np.zeros((64, 28, 28), np.uint8)
    labels = np.arange(64) % 10
    for i in range(64):
        height, width = rng.integers(6, 13, size=2)
        top, left = rng.integers(5, 23 - height), rng.integers(5, 23 - width)
        images[i, top : top + height, left : left + width] = rng.integers(150, 256)
    return images, labels


def test_every_shift_gives_the_same_bytes_twice_and_keeps_the_shape(
    digits: tuple[np.ndarray, np.ndarray],
) -> None:
    images, _ = digits
    for first, second in zip(shifts(7), shifts(7), strict=True):
        a, b = first.apply(images), second.apply(images)
        assert a.dtype == np.uint8, first.name
        assert a.shape == images.shape, first.name
        assert a.tobytes() == b.tobytes(), first.name
    assert shifts(7)[0].name == "identity"
    assert shifts(7)[0].apply(images).tobytes() == images.tobytes()


def test_the_shifts_do_what_their_names_say(digits: tuple[np.ndarray, np.ndarray]) -> None:
    images, _ = digits
    ink = images.astype(np.int64).sum()
    assert strokes(1)(images).astype(np.int64).sum() > ink
    assert strokes(-1)(images).astype(np.int64).sum() < ink
    assert np.array_equal(rotate(0)(images), images)
    assert np.array_equal(scale(1.0)(images), images)
    # A square turned a quarter is the array rotated by np.rot90 (counter-clockwise on screen).
    square = np.zeros((1, 28, 28), np.uint8)
    square[0, 4:10, 6:12] = 255
    assert np.array_equal(rotate(90)(square), np.rot90(square, axes=(1, 2)))
    # Smaller digits take less ink, centred where they were.
    small = scale(0.8)(images)
    assert small.astype(np.int64).sum() < ink
    centre = np.array([ndimage.center_of_mass(i) for i in images])
    moved = np.array([ndimage.center_of_mass(i) for i in small])
    assert np.allclose(moved, (centre - 13.5) * 0.8 + 13.5, atol=1.0)
    # Off-centre: every digit moved by 2 to 4 whole pixels per axis, none lost off the frame.
    placed = off_centre(4, seed=1)(images)
    shift = np.array([ndimage.center_of_mass(i) for i in placed]) - centre
    assert np.all(np.abs(shift) >= 1.5)
    assert np.all(np.abs(shift) <= 4.5)
    assert not np.array_equal(placed, off_centre(4, seed=2)(images))


def test_score_reports_each_shift_against_the_unchanged_set(
    digits: tuple[np.ndarray, np.ndarray],
) -> None:
    images, labels = digits

    def by_ink(batch: np.ndarray) -> np.ndarray:
        """A 'model' that answers 0 for heavy digits and 1 otherwise: it depends on the ink."""
        heavy = batch.reshape(len(batch), -1).astype(np.int64).sum(axis=1) > 20_000
        return np.eye(10, dtype=np.float32)[np.where(heavy, 0, 1)]

    expected = float(np.mean(by_ink(images).argmax(axis=1) == labels))
    result = score(by_ink, images, labels, seed=5)
    assert list(result) == [s.name for s in shifts(5)]
    assert result["identity"]["accuracy"] == pytest.approx(expected)
    assert result["identity"]["change"] == 0
    for name, row in result.items():
        assert row["change"] == pytest.approx(row["accuracy"] - expected, abs=1e-6), name
