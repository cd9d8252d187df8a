"""The test set under the shifts real digits have: rotation, stroke width, scale, placement.

MNIST's digits are size-normalised and centred; digits from a page, a phone or the draw-a-digit
page are not quite. Each shift here is deterministic (the same bytes on every run and machine:
fixed angles and factors, placement offsets from a seeded generator), so a change in a model's
accuracy under it is the model's, not the data's. ``evaluate`` scores every shift into
``reports/robustness.json``; the pull-request report shows the change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage

Images = npt.NDArray[np.uint8]
SIZE = 28
# The placement offsets' seed: fixed, not the params' ``seed``, so that two models trained with
# different seeds are scored on the same shifted images (a change is the model's, not the data's).
PLACEMENT_SEED = 20_000


def _affine(images: Images, matrix: npt.NDArray[np.float64]) -> Images:
    """Apply one 2x2 transform about the frame's centre to every image (bilinear, 0 outside)."""
    centre = np.array([(SIZE - 1) / 2, (SIZE - 1) / 2])
    inverse = np.linalg.inv(matrix)  # affine_transform maps output coordinates to input ones
    stack = np.eye(3)
    stack[1:, 1:] = inverse
    offset = np.concatenate([[0.0], centre - inverse @ centre])
    out: npt.NDArray[np.float32] = ndimage.affine_transform(
        images.astype(np.float32), stack, offset=offset, order=1, mode="constant", cval=0.0
    )
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def rotate(degrees: float) -> Callable[[Images], Images]:
    """Rotate every digit by ``degrees`` (counter-clockwise) about the frame's centre."""
    theta = np.deg2rad(degrees)
    # In (row, col) with rows growing downwards: a point right of the centre moves up.
    matrix = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    return lambda images: _affine(images, matrix)


def scale(factor: float) -> Callable[[Images], Images]:
    """Grow (``factor`` > 1) or shrink every digit about the frame's centre."""
    return lambda images: _affine(images, np.eye(2) * factor)


def strokes(pixels: int) -> Callable[[Images], Images]:
    """Thicker (``pixels`` > 0: grey dilation) or thinner (< 0: grey erosion) strokes."""
    size = (1, abs(pixels) + 1, abs(pixels) + 1)
    morph = ndimage.grey_dilation if pixels > 0 else ndimage.grey_erosion
    return lambda images: np.asarray(morph(images, size=size), dtype=np.uint8)


def off_centre(max_pixels: int, seed: int) -> Callable[[Images], Images]:
    """Move each digit by its own whole-pixel offset of 2 to ``max_pixels`` per axis (seeded)."""

    def apply(images: Images) -> Images:
        rng = np.random.default_rng(seed)
        magnitude = rng.integers(2, max_pixels + 1, size=(len(images), 2))
        offsets = magnitude * rng.choice([-1, 1], size=(len(images), 2))
        pad = max_pixels
        padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad)))
        out = np.empty_like(images)
        for i, (dy, dx) in enumerate(offsets):
            out[i] = padded[i, pad - dy : pad - dy + SIZE, pad - dx : pad - dx + SIZE]
        return out

    return apply


@dataclass(frozen=True)
class Shift:
    """One named, deterministic change of the inputs."""

    name: str
    description: str
    apply: Callable[[Images], Images]


def shifts(seed: int) -> tuple[Shift, ...]:
    """The shifts ``evaluate`` scores, in report order (the first is the unchanged test set)."""
    return (
        Shift("identity", "the test set as it is", lambda images: images.copy()),
        Shift("rotate-ccw", "rotated 10 degrees counter-clockwise", rotate(10)),
        Shift("rotate-cw", "rotated 10 degrees clockwise", rotate(-10)),
        Shift("thicker", "strokes 1 pixel thicker (grey dilation)", strokes(1)),
        Shift("thinner", "strokes 1 pixel thinner (grey erosion)", strokes(-1)),
        Shift("smaller", "scaled to 80% about the centre", scale(0.8)),
        Shift("larger", "scaled to 115% about the centre", scale(1.15)),
        Shift("off-centre", "moved 2-4 pixels per axis (seeded)", off_centre(4, seed)),
    )


def score(
    predict: Callable[[Images], npt.NDArray[np.float32]],
    images: Images,
    labels: npt.NDArray[np.integer],
    seed: int = PLACEMENT_SEED,
) -> dict[str, dict[str, float]]:
    """Accuracy on every shift, and its change from the unchanged test set.

    Numbers only (DVC diffs them as metrics); each shift's description is in :func:`shifts`.

    Args:
        predict: The model: ``uint8[N,28,28]`` to ``float32[N,10]`` probabilities.
        images: The test images.
        labels: Their digits.
        seed: Seeds the placement offsets.

    Returns:
        ``{shift name: {"accuracy", "change"}}``, in :func:`shifts` order.
    """
    result: dict[str, dict[str, float]] = {}
    baseline = 0.0
    for shift in shifts(seed):
        accuracy = float(np.mean(predict(shift.apply(images)).argmax(axis=1) == labels))
        if shift.name == "identity":
            baseline = accuracy
        result[shift.name] = {
            "accuracy": round(accuracy, 6),
            "change": round(accuracy - baseline, 6),
        }
    return result


def descriptions() -> dict[str, str]:
    """Each shift's name and what it does, in report order."""
    return {shift.name: shift.description for shift in shifts(PLACEMENT_SEED)}
