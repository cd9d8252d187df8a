"""Every malformed body gets a 4xx with a one-line JSON error, never a 500 or a traceback.

One sweep over every prediction route: bad JSON of every kind (deep nesting, NaN, huge and
out-of-range numbers, wrong shapes, ragged rows, oversized batches), wrong content types, and
hostile images (a decompression bomb, truncated files, formats that are not PNG or JPEG).
Nothing refused reaches the prediction log.
"""

from __future__ import annotations

import io
import sqlite3
import struct
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from flask.testing import FlaskClient
from PIL import Image

from app.settings import Settings
from tests.support.serving import started

ROW = [0] * 28
IMAGE = [ROW] * 28


def png(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, format="PNG")
    return out.getvalue()


def bomb_png(width: int, height: int) -> bytes:
    """A valid, tiny PNG that claims ``width`` x ``height`` pixels (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (width + 1) * 4)  # a few rows; the rest never arrives
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")
    )


DIGIT = np.zeros((28, 28), np.uint8)
DIGIT[6:22, 12:16] = 255
GOOD_PNG = png(DIGIT)

JSON_BODIES: dict[str, Any] = {
    "empty object": {},
    "not an object": [1, 2, 3],
    "null image": {"image": None},
    "string pixels": {"image": [["a"] * 28] * 28},
    "27 rows": {"image": [ROW] * 27},
    "29 columns": {"image": [[0] * 29] * 28},
    "ragged rows": {"image": [ROW] * 27 + [[0] * 5]},
    "3-d image": {"image": [[[0]] * 28] * 28},
    "negative pixel": {"image": [[-1, *ROW[1:]]] + [ROW] * 27},
    "pixel above 255": {"image": [[256, *ROW[1:]]] + [ROW] * 27},
    "huge number": {"image": [[1e308, *ROW[1:]]] + [ROW] * 27},
    "empty batch": {"images": []},
    "oversized batch": {"images": [IMAGE] * 257},
    "both image and images": {"image": IMAGE, "images": [IMAGE]},
}
RAW_BODIES: dict[str, bytes] = {
    "NaN": b'{"image": [[NaN' + b", 0" * 27 + b"]" + b", [" + b"0, " * 27 + b"0]" * 1 + b"]}",
    "Infinity": b'{"image": [[Infinity' + b", 0" * 27 + b"]]}",
    "number overflow": b'{"image": [[1e999' + b", 0" * 27 + b"]]}",
    "deep nesting": b'{"image": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "truncated JSON": b'{"image": [[0, 0, 0',
    "not UTF-8": b'{"image": "\xff\xfe"}',
    "duplicate keys": b'{"image": 1, "image": [[0]]}',
}
IMAGE_UPLOADS: dict[str, tuple[bytes, str]] = {
    "decompression bomb": (bomb_png(60_000, 60_000), "image/png"),
    "truncated PNG": (GOOD_PNG[: len(GOOD_PNG) // 2], "image/png"),
    "truncated JPEG": (b"\xff\xd8\xff\xe0" + b"\x00" * 20, "image/jpeg"),
    "GIF": (b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", "image/gif"),
    "text": (b"hello", "text/plain"),
    "empty file": (b"", "image/png"),
    "blank image": (png(np.zeros((28, 28), np.uint8)), "image/png"),
}


@pytest.fixture
def hostile(make_settings: Callable[..., Settings]) -> Iterator[tuple[FlaskClient, Settings]]:
    settings = make_settings(max_images=256)
    with started(settings) as app:
        yield app.test_client(), settings


def assert_clean_refusal(response: Any, case: str) -> None:
    assert 400 <= response.status_code < 500, (case, response.status_code, response.data[:300])
    body = response.get_json()
    assert isinstance(body, dict), (case, response.data[:300])
    assert body.get("message"), (case, response.data[:300])
    assert "\n" not in body["message"], case  # one line
    assert b"Traceback" not in response.data, case
    assert b'File "' not in response.data, case


def wrap(route: str, image_body: Any) -> Any:
    """The same hostile payload in each route's envelope."""
    if not isinstance(image_body, dict) or route == "/predict":
        return image_body
    images = image_body.get("images", [image_body.get("image")])
    if route == "/v1/models/mnist:predict":
        return {"instances": images}
    return {"inputs": [{"name": "images", "shape": [1, 28, 28], "datatype": "UINT8",
                        "data": images}]}  # fmt: skip


ROUTES = ["/predict", "/v1/models/mnist:predict", "/v2/models/mnist/infer"]


def test_hostile_json_on_every_route(hostile: tuple[FlaskClient, Settings]) -> None:
    client, settings = hostile
    for route in ROUTES:
        for case, body in JSON_BODIES.items():
            if case == "both image and images" and route != "/predict":
                continue
            if case == "3-d image" and route.startswith("/v2"):
                continue  # V2's data is read flat against its shape: 784 values is valid
            assert_clean_refusal(client.post(route, json=wrap(route, body)), f"{route} {case}")
        for case, raw in RAW_BODIES.items():
            response = client.post(route, data=raw, content_type="application/json")
            assert_clean_refusal(response, f"{route} {case}")
        for content_type in ("text/plain", "application/x-www-form-urlencoded", "image/png"):
            response = client.post(route, data=b"image=1", content_type=content_type)
            assert_clean_refusal(response, f"{route} as {content_type}")
    oversized = client.post("/predict", data=b"[" + b"0," * 5_000_000 + b"0]",
                            content_type="application/json")  # fmt: skip
    assert oversized.status_code == 413
    assert_no_prediction_logged(settings)


def test_hostile_images(hostile: tuple[FlaskClient, Settings]) -> None:
    client, settings = hostile
    for case, (data, mimetype) in IMAGE_UPLOADS.items():
        response = client.post(
            "/predict/image",
            data={"file": (io.BytesIO(data), "upload", mimetype)},
            content_type="multipart/form-data",
        )
        assert_clean_refusal(response, case)
    no_file = client.post("/predict/image", data={}, content_type="multipart/form-data")
    assert_clean_refusal(no_file, "no file")
    as_json = client.post("/predict/image", json={"file": "x"})
    assert_clean_refusal(as_json, "JSON to the upload route")
    assert_no_prediction_logged(settings)
    # The same route still answers a good upload: refusals leave the service healthy.
    ok = client.post(
        "/predict/image",
        data={"file": (io.BytesIO(GOOD_PNG), "one.png", "image/png")},
        content_type="multipart/form-data",
    )
    assert ok.status_code == 200


def assert_no_prediction_logged(settings: Settings) -> None:
    """Nothing in the log; a log its writer is still creating (no table yet) counts as empty."""
    if not settings.prediction_log.exists():
        return
    with sqlite3.connect(settings.prediction_log) as db:
        if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'predictions'").fetchone():
            assert db.execute("SELECT count(*) FROM predictions").fetchone()[0] == 0
