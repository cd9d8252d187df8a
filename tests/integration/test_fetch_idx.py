"""The IDX source against a real HTTP server on loopback serving tiny IDX archives."""

import gzip
import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from mnist_pipeline.errors import PipelineError
from mnist_pipeline.params import IdxFile, IdxSource
from mnist_pipeline.sources import fetch_idx
from mnist_pipeline.stages import fetch
from tests.support.data import make_digits
from tests.support.servers import free_port
from tests.unit.test_sources import idx_bytes

FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A static file server on a free loopback port."""
    root = tmp_path / "mirror"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(root), **kwargs)  # type: ignore[arg-type]

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", root
    server.shutdown()
    server.server_close()


def publish(root: Path, n_train: int = 30, n_test: int = 20) -> dict[str, IdxFile]:
    train, test = make_digits(n_train, 0), make_digits(n_test, 1)
    arrays = {
        "train_images": train.x,
        "train_labels": train.y,
        "test_images": test.x,
        "test_labels": test.y,
    }
    files = {}
    for key, name in FILES.items():
        blob = gzip.compress(idx_bytes(arrays[key]))
        (root / name).write_bytes(blob)
        files[key] = IdxFile(name=name, sha256=hashlib.sha256(blob).hexdigest())
    return files


def test_downloads_verifies_and_parses(mirror: tuple[str, Path]) -> None:
    url, root = mirror
    files = publish(root)
    raw = fetch_idx(IdxSource(mirrors=[url], **files), timeout_s=5)  # type: ignore[arg-type]
    np.testing.assert_array_equal(raw.train.x, make_digits(30, 0).x)
    np.testing.assert_array_equal(raw.test.y, make_digits(20, 1).y)


def test_falls_back_to_the_next_mirror(mirror: tuple[str, Path]) -> None:
    url, root = mirror
    files = publish(root)
    dead = f"http://127.0.0.1:{free_port()}/"
    source = IdxSource(mirrors=[dead, url], **files)  # type: ignore[arg-type]
    assert len(fetch_idx(source, timeout_s=5).train) == 30


def test_network_failure_names_the_file_and_what_to_do() -> None:
    dead = f"http://127.0.0.1:{free_port()}/"
    with pytest.raises(PipelineError, match="could not download train-images-idx3-ubyte.gz"):
        fetch_idx(IdxSource(mirrors=[dead]), timeout_s=2)  # type: ignore[list-item]


def test_checksum_mismatch_with_published_checksums(mirror: tuple[str, Path]) -> None:
    url, root = mirror
    publish(root)  # tiny files cannot match the real MNIST checksums
    with pytest.raises(PipelineError, match="checksum mismatch for train-images-idx3-ubyte.gz"):
        fetch_idx(IdxSource(mirrors=[url]), timeout_s=5)  # type: ignore[list-item]


def test_stage_failure_leaves_nothing_in_data_raw(mirror: tuple[str, Path], tmp_path: Path) -> None:
    url, root = mirror
    publish(root)
    params = tmp_path / "params.yaml"
    params.write_text(f"fetch: {{source: idx, timeout_s: 5, idx: {{mirrors: ['{url}']}}}}\n")
    out = tmp_path / "data" / "raw" / "mnist.npz"
    with pytest.raises(PipelineError, match="checksum mismatch"):
        fetch.main(tmp_path)
    assert not out.exists()
    assert not [p for p in (tmp_path / "data").rglob("*") if p.is_file()]


def test_stage_refuses_data_of_the_wrong_size(mirror: tuple[str, Path], tmp_path: Path) -> None:
    url, root = mirror
    files = publish(root)
    params = tmp_path / "params.yaml"
    checksums = {key: {"name": f.name, "sha256": f.sha256} for key, f in files.items()}
    params.write_text(
        "fetch: {source: idx, idx: "
        + str({"mirrors": [url], **checksums}).replace("'", '"')
        + "}\n"
    )
    out = tmp_path / "data" / "raw" / "mnist.npz"
    with pytest.raises(PipelineError, match="raw train: expected 60000 examples, got 30"):
        fetch.main(tmp_path)
    assert not out.exists()
