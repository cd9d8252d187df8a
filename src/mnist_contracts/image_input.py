"""Turn a photo or scan of a digit into an MNIST-like ``uint8[28,28]`` image.

The steps repeat how MNIST itself was made (LeCun et al.): grayscale; light digit on dark
(invert when the background is light); crop to the ink; fit into a 20x20 box keeping the aspect
ratio, with anti-aliasing; place in a 28x28 frame so the centre of mass is at the centre.

One implementation for the service's image route and for ``mnist score``'s image files, so a
file scored in batch is read exactly as the same file uploaded.
"""

from __future__ import annotations

import io

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageOps, UnidentifiedImageError

FRAME = 28
BOX = 20
# Below this contrast (0-255) between ink and background there is no digit to find.
MIN_CONTRAST = 40.0


class ImageInputError(ValueError):
    """The upload is not an image we can turn into a digit."""


def decode(data: bytes, max_pixels: int) -> npt.NDArray[np.float32]:
    """Decode PNG/JPEG bytes into a float grayscale array, EXIF rotation applied.

    Args:
        data: The uploaded bytes.
        max_pixels: Refuse larger images (decompression bombs).

    Returns:
        ``float32[H,W]`` in 0-255.

    Raises:
        ImageInputError: If the bytes are not a decodable PNG/JPEG or too large.
    """
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.format not in {"PNG", "JPEG"}:
                raise ImageInputError(f"unsupported image format {img.format}; send PNG or JPEG")
            if img.width * img.height > max_pixels:
                raise ImageInputError(f"image of {img.width}x{img.height} pixels is too large")
            gray = ImageOps.exif_transpose(img).convert("L")
            return np.asarray(gray, dtype=np.float32)
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, SyntaxError) as err:
        raise ImageInputError(f"cannot decode image ({err.__class__.__name__})") from None


def to_mnist(gray: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
    """Normalise a grayscale digit image the way MNIST's digits were normalised.

    Args:
        gray: ``float32[H,W]``, 0-255, either polarity.

    Returns:
        ``uint8[28,28]``, white digit on black, centred by centre of mass.

    Raises:
        ImageInputError: If no digit stands out from the background.
    """
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    if np.median(border) > 127:  # dark ink on light paper
        gray = 255.0 - gray
        border = 255.0 - border
    ink = np.clip(gray - np.percentile(border, 75), 0, None)
    if ink.max() < MIN_CONTRAST:
        raise ImageInputError(
            "no digit found: the image has no contrast between ink and background"
        )
    ink *= 255.0 / ink.max()
    ink[ink < 0.15 * 255] = 0  # paper texture, shadows, JPEG noise
    rows, cols = np.nonzero(ink)
    crop = ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    height, width = crop.shape
    scale = BOX / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    boxed = np.asarray(
        Image.fromarray(crop.astype(np.float32), mode="F").resize(size, Image.Resampling.LANCZOS)
    ).clip(0, 255)
    frame = np.zeros((FRAME, FRAME), np.float32)
    top, left = (FRAME - boxed.shape[0]) // 2, (FRAME - boxed.shape[1]) // 2
    frame[top : top + boxed.shape[0], left : left + boxed.shape[1]] = boxed
    cy, cx = center_of_mass(frame)
    shifted = shift_linear(frame, FRAME / 2 - 0.5 - cy, FRAME / 2 - 0.5 - cx)
    return np.asarray(np.rint(shifted.clip(0, 255)), dtype=np.uint8)


def center_of_mass(image: npt.NDArray[np.float32]) -> tuple[float, float]:
    """The intensity-weighted centre ``(row, column)`` of a non-empty image."""
    total = float(image.sum())
    rows, cols = np.indices(image.shape)
    return float((rows * image).sum()) / total, float((cols * image).sum()) / total


def shift_linear(image: npt.NDArray[np.float32], dy: float, dx: float) -> npt.NDArray[np.float32]:
    """Shift by a sub-pixel offset with bilinear interpolation, zeros coming in from outside.

    The same as ``scipy.ndimage.shift(image, (dy, dx), order=1)`` (mode ``constant``: a sample
    from beyond the edge is 0, not interpolated towards it); written here so that the serving
    images need no SciPy for one call (tests/service/test_image_input.py checks the equality).
    """
    height, width = image.shape
    out = np.ones_like(image)
    sources = []
    for axis, (size, delta) in enumerate(((height, dy), (width, dx))):
        coords = np.arange(size, dtype=np.float64) - delta
        inside = (coords >= 0) & (coords <= size - 1)
        low = np.clip(np.floor(coords).astype(np.int64), 0, size - 1)
        high = np.clip(low + 1, 0, size - 1)
        frac = coords - np.floor(coords)
        sources.append((inside, low, high, frac))
        mask = inside.reshape((-1, 1) if axis == 0 else (1, -1))
        out = out * mask
    (_, r0, r1, fy), (_, c0, c1, fx) = sources
    fy, fx = fy[:, None], fx[None, :]
    top = image[r0][:, c0] * (1 - fx) + image[r0][:, c1] * fx
    bottom = image[r1][:, c0] * (1 - fx) + image[r1][:, c1] * fx
    return np.asarray(out * (top * (1 - fy) + bottom * fy), np.float32)


def image_to_mnist(data: bytes, max_pixels: int = 40_000_000) -> npt.NDArray[np.uint8]:
    """Decode an upload and normalise it to an MNIST-like digit.

    Args:
        data: PNG or JPEG bytes.
        max_pixels: Largest accepted image.

    Returns:
        ``uint8[28,28]``.
    """
    return to_mnist(decode(data, max_pixels))
