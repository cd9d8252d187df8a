"""Uploads become MNIST-like digits: polarity, crop, 20x20 fit, centre of mass."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter
from scipy import ndimage

from mnist_contracts.image_input import (
    ImageInputError,
    center_of_mass,
    image_to_mnist,
    shift_linear,
    to_mnist,
)


def mnist_seven() -> np.ndarray:
    """A 7 drawn the MNIST way: white strokes on black, inside 20x20, centred."""
    image = Image.new("L", (28, 28), 0)
    draw = ImageDraw.Draw(image)
    draw.line([(8, 7), (20, 7), (12, 22)], fill=255, width=3)
    return np.asarray(image.filter(ImageFilter.GaussianBlur(0.6)))


def photograph(digit: np.ndarray, *, seed: int) -> bytes:
    """Dark ink on uneven light paper, 10x larger, off-centre, noisy, as a JPEG."""
    rng = np.random.default_rng(seed)
    big = np.asarray(Image.fromarray(digit).resize((280, 280), Image.Resampling.BICUBIC), float)
    paper = np.full((420, 360), 225.0) + np.linspace(-25, 20, 360)[np.newaxis, :]
    paper[60:340, 20:300] -= big * 0.8  # ink darkens the paper
    paper += rng.normal(0, 6, paper.shape)
    buffer = io.BytesIO()
    Image.fromarray(paper.clip(0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def test_a_photo_of_a_digit_becomes_the_mnist_digit() -> None:
    original = mnist_seven()
    result = image_to_mnist(photograph(original, seed=0))
    assert result.shape == (28, 28)
    assert result.dtype == np.uint8
    assert result[0].max() == 0
    assert result[:, -1].max() == 0
    rows, cols = np.nonzero(result > 40)
    assert np.ptp(rows) <= 21
    assert np.ptp(cols) <= 21
    cy, cx = ndimage.center_of_mass(result.astype(float))
    assert abs(cy - 13.5) < 1
    assert abs(cx - 13.5) < 1
    # The same digit, clean and already white on black, normalised the same way.
    reference = to_mnist(original.astype(np.float32))
    correlation = np.corrcoef(result.ravel(), reference.ravel())[0, 1]
    assert correlation > 0.9


def test_white_on_black_is_left_as_is() -> None:
    buffer = io.BytesIO()
    Image.fromarray(mnist_seven()).resize((100, 100)).save(buffer, "PNG")
    result = image_to_mnist(buffer.getvalue())
    reference = to_mnist(mnist_seven().astype(np.float32))
    assert np.corrcoef(result.ravel(), reference.ravel())[0, 1] > 0.95


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x89PNG\r\n\x1a\nbroken", "cannot decode image"),
        (b"GIF89a" + bytes(30), "cannot decode image|unsupported image format"),
    ],
)
def test_undecodable_uploads(data: bytes, message: str) -> None:
    with pytest.raises(ImageInputError, match=message):
        image_to_mnist(data)


def test_blank_and_oversized_images_are_refused() -> None:
    buffer = io.BytesIO()
    Image.new("L", (64, 64), 200).save(buffer, "PNG")
    with pytest.raises(ImageInputError, match="no digit found"):
        image_to_mnist(buffer.getvalue())
    with pytest.raises(ImageInputError, match="too large"):
        image_to_mnist(buffer.getvalue(), max_pixels=1000)
    gif = io.BytesIO()
    Image.new("L", (8, 8), 0).save(gif, "GIF")
    with pytest.raises(ImageInputError, match="unsupported image format GIF"):
        image_to_mnist(gif.getvalue())


def test_the_numpy_centring_equals_scipy_ndimage() -> None:
    """The service centres without SciPy (the slim image has none); the result must not move."""
    rng = np.random.default_rng(0)
    for trial in range(500):
        frame = np.zeros((28, 28), np.float32)
        height, width = rng.integers(1, 21, 2)
        frame[4 : 4 + height, 4 : 4 + width] = rng.uniform(0, 255, (height, width))
        if trial % 3 == 0:  # ink up to the edges: the boundary rule matters
            frame = rng.uniform(0, 255, (28, 28)).astype(np.float32)
        dy, dx = rng.uniform(-6, 6, 2)
        if trial % 7 == 0:
            dy, dx = float(rng.integers(-3, 4)), float(rng.integers(-3, 4))
        np.testing.assert_allclose(center_of_mass(frame), ndimage.center_of_mass(frame))
        np.testing.assert_allclose(
            shift_linear(frame, dy, dx), ndimage.shift(frame, (dy, dx), order=1), atol=1e-3
        )
