"""Per-image summary features for drift monitoring: ONE function for reference and live data.

Raw pixels (784 columns) drift tests are noisy and hard to read; these few features say what
changed in words a person understands: the digits got brighter, wider, thicker, off-centre.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

INK = 127  # a pixel above this (0-255) is ink
CENTRE = 13.5
FEATURES = (
    "mean_intensity",
    "ink_share",
    "bbox_height",
    "bbox_width",
    "com_row_offset",
    "com_col_offset",
    "stroke_thickness",
)
OUTPUTS = ("predicted_class", "confidence")


def image_features(images: npt.NDArray[np.uint8]) -> pd.DataFrame:
    """Summary features of ``uint8[N,28,28]`` images (white digit on black).

    Args:
        images: The images.

    Returns:
        One row per image, the columns of :data:`FEATURES`.
    """
    pixels = images.astype(np.float64)
    ink = images > INK
    rows_any: npt.NDArray[np.bool_] = np.asarray(ink.any(axis=2))
    cols_any: npt.NDArray[np.bool_] = np.asarray(ink.any(axis=1))
    idx = np.arange(28)

    def extent(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.float64]:
        first = np.where(mask.any(axis=1), mask.argmax(axis=1), 0)
        last = np.where(mask.any(axis=1), 27 - mask[:, ::-1].argmax(axis=1), -1)
        return (last - first + 1).astype(np.float64)

    height, width = extent(rows_any), extent(cols_any)
    mass = pixels.sum(axis=(1, 2))
    safe = np.where(mass > 0, mass, 1.0)
    com_row = (pixels.sum(axis=2) * idx).sum(axis=1) / safe
    com_col = (pixels.sum(axis=1) * idx).sum(axis=1) / safe
    ink_count = ink.sum(axis=(1, 2)).astype(np.float64)
    return pd.DataFrame(
        {
            "mean_intensity": pixels.mean(axis=(1, 2)) / 255.0,
            "ink_share": ink_count / 784.0,
            "bbox_height": height,
            "bbox_width": width,
            "com_row_offset": np.where(mass > 0, com_row - CENTRE, 0.0),
            "com_col_offset": np.where(mass > 0, com_col - CENTRE, 0.0),
            # Ink pixels per pixel of the digit's longer side: roughly the stroke width.
            "stroke_thickness": ink_count / np.maximum(np.maximum(height, width), 1.0),
        }
    )


def drift_frame(
    images: npt.NDArray[np.uint8],
    predicted_class: npt.NDArray[np.integer],
    confidence: npt.NDArray[np.floating],
) -> pd.DataFrame:
    """Features plus the model's output per image, as the monitor compares them.

    Args:
        images: ``uint8[N,28,28]``.
        predicted_class: The class the model answered, per image.
        confidence: The probability of that class, per image.

    Returns:
        The columns of :data:`FEATURES` and :data:`OUTPUTS`.
    """
    frame = image_features(images)
    frame["predicted_class"] = np.asarray(predicted_class).astype(int).astype(str)
    frame["confidence"] = np.asarray(confidence, dtype=np.float64)
    return frame
