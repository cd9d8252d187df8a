"""The service through Flask's test client, on a tiny SavedModel built in the test."""

from __future__ import annotations

import io
import json
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from flask.testing import FlaskClient
from PIL import Image
from scipy import ndimage

from app import create_app, lifecycle
from app.serving_model import load_model
from app.settings import Settings
from mnist_contracts.image_input import image_to_mnist
from tests.support.serving import Serve, started
from tests.support.waiting import wait_until

ZEROS = [[0] * 28 for _ in range(28)]


def digit(value: int = 255) -> list[list[int]]:
    image = np.zeros((28, 28), np.uint8)
    image[6:22, 12:16] = value
    return image.tolist()


def test_predict_one_image(client: FlaskClient, tiny_model: Path) -> None:
    response = client.post("/predict", json={"image": digit()})
    assert response.status_code == 200
    body = response.get_json()
    [prediction] = body["predictions"]
    assert len(prediction["probabilities"]) == 10
    assert sum(prediction["probabilities"]) == pytest.approx(1.0, abs=1e-4)
    assert prediction["predicted_class"] == int(np.argmax(prediction["probabilities"]))
    assert prediction["confidence"] == pytest.approx(max(prediction["probabilities"]), abs=1e-6)
    expected = load_model(str(tiny_model), "mnist").predict(np.array([digit()], np.uint8))
    np.testing.assert_allclose(prediction["probabilities"], expected[0], atol=1e-6)
    assert body["model_name"] == "mnist"
    assert body["model_version"].startswith("sha256:")
    assert response.headers["X-Request-ID"]


def test_batch_and_float_encoding_agree(client: FlaskClient) -> None:
    as_uint8 = client.post("/predict", json={"images": [digit(), ZEROS]}).get_json()
    as_float = client.post(
        "/predict", json={"images": [digit(1.0), ZEROS], "encoding": "float"}
    ).get_json()
    assert len(as_uint8["predictions"]) == 2

    def answers(reply: dict[str, list[dict[str, object]]]) -> list[dict[str, object]]:
        return [{k: v for k, v in p.items() if k != "event_id"} for p in reply["predictions"]]

    assert answers(as_uint8) == answers(as_float)
    ids = [p["event_id"] for p in as_uint8["predictions"] + as_float["predictions"]]
    assert len(set(ids)) == 4  # one server-made id per image


@pytest.mark.parametrize(
    ("payload", "field", "message"),
    [
        ({"image": [[0, 1]]}, "image", "must be 28x28, got shape [1, 2]"),
        ({"images": [ZEROS, [[0] * 27] * 28]}, "images", "equal length"),
        ({"image": [[256] * 28] * 28}, "image", "integers 0-255"),
        ({"image": [[0.5] * 28] * 28}, "image", "integers 0-255"),
        ({"image": [[2.0] * 28] * 28, "encoding": "float"}, "image", "within 0.0-1.0"),
        ({"images": [ZEROS] * 5}, "images", "at most 4 images"),
        ({"image": ZEROS, "images": [ZEROS]}, "body", "exactly one of image or images"),
        ({"picture": ZEROS}, "picture", "Extra inputs are not permitted"),
        ({"image": ZEROS, "encoding": "int16"}, "encoding", "Input should be 'uint8' or 'float'"),
    ],
)
def test_bad_requests_get_422_naming_the_field(
    client: FlaskClient, payload: dict[str, object], field: str, message: str
) -> None:
    response = client.post("/predict", json=payload)
    assert response.status_code == 422
    body = response.get_json()
    assert body["error"] == "invalid_request"
    assert any(f["field"] == field and message in f["message"] for f in body["fields"]), body


def test_nan_and_infinity_are_refused(client: FlaskClient) -> None:
    for token in ("NaN", "Infinity"):
        raw = json.dumps({"image": ZEROS}).replace("0", token, 1)
        response = client.post("/predict", data=raw, content_type="application/json")
        assert response.status_code == 422
        assert "NaN or infinity" in response.get_json()["message"]


JSON_ROUTES = ["/predict", "/v1/models/mnist:predict", "/v2/models/mnist/infer"]


@pytest.mark.parametrize("route", JSON_ROUTES)
def test_deeply_nested_json_is_a_client_error(client: FlaskClient, route: str) -> None:
    """Python's JSON decoder raises RecursionError at this depth: it must not answer 500."""
    body = "[" * 100_000 + "]" * 100_000
    response = client.post(route, data=body, content_type="application/json")
    assert 400 <= response.status_code < 500
    assert response.get_json()["error"] in {"invalid_request", "bad_request"}


def test_content_type_size_and_unknown_routes(
    make_settings: Callable[..., Settings],
) -> None:
    app = create_app(make_settings(max_content_length=10_000))
    client = app.test_client()
    wrong_type = client.post("/predict", data="image=1", content_type="text/plain")
    assert wrong_type.status_code == 415
    assert wrong_type.get_json()["error"] == "unsupported_media_type"
    too_big = client.post("/predict", json={"images": [ZEROS] * 10})
    assert too_big.status_code == 413
    assert too_big.get_json()["message"] == "request body too large"
    missing = client.get("/no/such/thing")
    assert missing.status_code == 404
    assert missing.get_json()["error"] == "not_found"
    broken = client.post("/predict", data="{not json", content_type="application/json")
    assert broken.status_code == 422
    for response in (wrong_type, too_big, missing, broken):
        text = response.get_data(as_text=True)
        assert "Traceback" not in text
        assert "/tmp" not in text


def test_api_key_protects_predictions_not_health(
    serve: Serve, make_settings: Callable[..., Settings]
) -> None:
    client = serve(make_settings(api_key="s3cret")).test_client()
    assert client.post("/predict", json={"image": ZEROS}).status_code == 401
    wrong = client.post("/predict", json={"image": ZEROS}, headers={"X-API-Key": "nope"})
    assert wrong.status_code == 401
    right = client.post("/predict", json={"image": ZEROS}, headers={"X-API-Key": "s3cret"})
    assert right.status_code == 200
    assert client.post("/admin/reload", json={}).status_code == 404  # no ADMIN_KEY: admin off
    for path in ("/health/live", "/health/ready", "/metrics", "/metadata"):
        assert client.get(path).status_code == 200, path


def test_not_ready_until_a_model_loads(
    serve: Serve, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    client = serve(make_settings(model_dir=tmp_path / "missing")).test_client()
    assert client.get("/health/live").status_code == 200
    ready = client.get("/health/ready")
    assert ready.status_code == 503
    assert ready.get_json()["error"] == "not_ready"
    assert client.post("/predict", json={"image": ZEROS}).status_code == 503
    assert client.get("/v2/health/ready").status_code == 503


def test_metadata_reports_model_and_metrics(
    serve: Serve, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    (tmp_path / "metrics.json").write_text(json.dumps({"test": {"accuracy": 0.9951, "loss": 0.1}}))
    body = serve(make_settings()).test_client().get("/metadata").get_json()
    assert body["model_name"] == "mnist"
    assert body["test_metrics"] == {"accuracy": 0.9951, "loss": 0.1}
    assert body["input"]["shape"] == [-1, 28, 28]
    assert body["output"]["shape"] == [-1, 10]


def test_tfserving_and_v2_routes(client: FlaskClient) -> None:
    tfs = client.post("/v1/models/mnist:predict", json={"instances": [digit(), ZEROS]})
    assert tfs.status_code == 200
    native = client.post("/predict", json={"images": [digit(), ZEROS]}).get_json()
    assert np.allclose(tfs.get_json()["predictions"][0], native["predictions"][0]["probabilities"])
    assert client.post("/v1/models/other:predict", json={"instances": [ZEROS]}).status_code == 404

    v2 = client.post(
        "/v2/models/mnist/infer",
        json={
            "inputs": [
                {
                    "name": "images",
                    "shape": [1, 28, 28],
                    "datatype": "UINT8",
                    "data": np.array(digit()).ravel().tolist(),
                }
            ]
        },
    )
    assert v2.status_code == 200
    output = v2.get_json()["outputs"][0]
    assert output["shape"] == [1, 10]
    assert np.allclose(output["data"], native["predictions"][0]["probabilities"])
    bad = client.post(
        "/v2/models/mnist/infer",
        json={"inputs": [{"name": "images", "shape": [1, 28], "datatype": "UINT8", "data": [0]}]},
    )
    assert bad.status_code == 422
    assert client.get("/v2/models/mnist").get_json()["inputs"][0]["datatype"] == "UINT8"
    assert client.get("/v2/models/mnist/ready").status_code == 200
    assert client.get("/v2/models/other").status_code == 404


def test_image_upload_is_normalised_like_mnist(client: FlaskClient) -> None:
    # Dark digit on a large light background, as a photo of paper would be.
    image = Image.new("L", (240, 320), color=230)
    image.paste(40, (100, 60, 130, 260))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG")
    response = client.post(
        "/predict/image",
        data={"file": (io.BytesIO(buffer.getvalue()), "digit.jpg")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 200, response.get_json()
    [answer] = response.get_json()["predictions"]
    # What the route fed the model: light-on-dark, the ink in a 20x20 box, centred by mass.
    seen = image_to_mnist(buffer.getvalue())
    assert seen.shape == (28, 28)
    assert seen.dtype == np.uint8
    assert seen[0].max() == 0  # the light paper became a black background
    assert seen.max() > 200  # the dark stroke became bright ink
    rows, cols = np.nonzero(seen)
    assert np.ptp(rows) < 21
    assert np.ptp(cols) < 21
    centre = np.array(ndimage.center_of_mass(seen.astype(float)))
    assert np.abs(centre - 13.5).max() < 1.0
    # ... and the model answered for exactly that image.
    direct = client.post("/predict", json={"image": seen.tolist()}).get_json()["predictions"][0]
    assert answer["probabilities"] == direct["probabilities"]
    garbage = client.post(
        "/predict/image",
        data={"file": (io.BytesIO(b"not an image"), "x.png")},
        content_type="multipart/form-data",
    )
    assert garbage.status_code == 422
    assert garbage.get_json()["fields"][0]["field"] == "file"
    assert client.post("/predict/image", json={"file": "x"}).status_code == 415


def test_reload_refuses_a_broken_model_and_accepts_a_good_one(
    serve: Serve,
    make_settings: Callable[..., Settings],
    tiny_model: Path,
    other_model: Path,
    tmp_path: Path,
) -> None:
    served = tmp_path / "served"  # the configured MODEL_DIR, updated in place as by `dvc pull`
    shutil.copytree(tiny_model, served)
    client = serve(make_settings(admin_key="adm", model_dir=served)).test_client()
    admin = {"X-Admin-Key": "adm"}
    before = client.get("/metadata").get_json()["model_version"]
    (served / "saved_model.pb").write_bytes(b"garbage")
    refused = client.post("/admin/reload", json={}, headers=admin)
    assert refused.status_code == 409
    assert str(tmp_path) not in refused.get_data(as_text=True)
    assert client.get("/metadata").get_json()["model_version"] == before
    assert client.post("/predict", json={"image": ZEROS}).status_code == 200

    shutil.rmtree(served)
    shutil.copytree(other_model, served)
    accepted = client.post("/admin/reload", json={}, headers=admin)
    assert accepted.status_code == 200
    after = accepted.get_json()["model_version"]
    assert after != before
    assert client.post("/predict", json={"image": ZEROS}).get_json()["model_version"] == after


def test_reload_never_loads_a_path_or_uri_the_caller_names(
    serve: Serve, make_settings: Callable[..., Settings], other_model: Path
) -> None:
    client = serve(make_settings(admin_key="adm")).test_client()
    admin = {"X-Admin-Key": "adm"}
    before = client.get("/metadata").get_json()["model_version"]
    for body, message in (
        ({"model_source": str(other_model)}, "the request body is invalid"),
        ({"source": "models:/other@production"}, "the request body is invalid"),
        ({"version": "../../etc"}, "the request body is invalid"),
        ({"alias": "x/../../y"}, "the request body is invalid"),
        ({"version": "3"}, "this service serves a directory"),
        ({"version": "3", "alias": "production"}, "not both"),
    ):
        response = client.post("/admin/reload", json=body, headers=admin)
        assert response.status_code == 422, body
        assert message in response.get_json()["message"], body
    assert client.get("/metadata").get_json()["model_version"] == before


def test_reload_names_versions_and_aliases_of_the_served_model_only() -> None:
    from app.routes_ops import reload_source
    from app.schemas import ReloadRequest

    uri = "models:/mnist-classifier@production"
    assert reload_source(uri, uri, ReloadRequest()) == uri
    assert reload_source(uri, uri, ReloadRequest(version="7")) == "models:/mnist-classifier/7"
    assert reload_source(uri, uri, ReloadRequest(alias="previous")) == (
        "models:/mnist-classifier@previous"
    )
    pinned = "models:/mnist-classifier/3"
    assert reload_source(pinned, pinned, ReloadRequest(alias="production")) == (
        "models:/mnist-classifier@production"
    )


def test_every_answered_prediction_is_logged(
    serve: Serve, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings()
    app = serve(settings)
    client = app.test_client()
    for _ in range(5):
        client.post("/predict", json={"images": [digit(), ZEROS, ZEROS]})
    client.post("/predict", json={"image": [[1]]})  # refused: not logged
    lifecycle.stop(app)  # what a worker's exit does: everything answered is written
    with sqlite3.connect(settings.prediction_log) as db:
        rows = db.execute("SELECT count(*), min(length(image)) FROM predictions").fetchone()
    assert rows == (15, 784)


def test_metrics_count_predictions_by_class(client: FlaskClient) -> None:
    client.post("/predict", json={"images": [digit(), digit()]})
    text = client.get("/metrics").get_data(as_text=True)
    counted = [
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("mnist_predictions_total{")
    ]
    assert sum(counted) == 2
    assert "mnist_prediction_confidence_bucket" in text
    assert "mnist_model_load_seconds" in text
    assert (
        'flask_http_request_duration_seconds_count{method="POST",status="200",url_rule="/predict"}'
        in text
    )


def test_live_accuracy_is_unknown_until_a_report_says(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """Not 0: a replica that has not read the monitor's report yet must not read as "accuracy 0"
    beside another replica's threshold, which pages MnistLiveAccuracyLow."""
    with started(make_settings(drift_report=tmp_path / "no-report.json")) as app:
        text = app.test_client().get("/metrics").get_data(as_text=True)
    assert "mnist_live_accuracy NaN" in text
    assert "mnist_live_accuracy_min NaN" in text


def test_openapi_document_and_swagger_ui(client: FlaskClient) -> None:
    spec = client.get("/openapi/openapi.json").get_json()
    assert spec["openapi"].startswith("3.1")
    assert {"/predict", "/predict/image", "/v2/models/{name}/infer"} <= set(spec["paths"])
    assert client.get("/openapi/swagger").status_code == 200
    # Swagger UI groups operations by tag: each operation is listed once, under one tag.
    tags = {(path, method): op["tags"] for path, ops in spec["paths"].items()
            for method, op in ops.items()}  # fmt: skip
    assert all(len(t) == 1 for t in tags.values()), tags
    assert tags["/v1/models/{name}:predict", "post"] == ["compatibility"]
    assert tags["/v2/models/{name}/infer", "post"] == ["compatibility"]
    assert tags["/predict", "post"] == ["predict"]
    assert "/" not in spec["paths"]  # the page is for people, not part of the API


def test_sync_log_commits_before_the_answer(
    serve: Serve, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(prediction_log_sync=True)
    client = serve(settings).test_client()
    assert client.post("/predict", json={"images": [digit(), ZEROS]}).status_code == 200
    # No stop, no writer thread: the rows are on disk when the response is.
    with sqlite3.connect(settings.prediction_log) as db:
        assert db.execute("SELECT count(*) FROM predictions").fetchone()[0] == 2


def test_a_worker_whose_first_load_failed_keeps_trying(
    serve: Serve, make_settings: Callable[..., Settings], tmp_path: Path, tiny_model: Path
) -> None:
    import shutil

    missing = tmp_path / "not-there-yet"
    client = serve(make_settings(model_dir=missing, reload_poll_s=0.1)).test_client()
    assert client.get("/health/ready").status_code == 503
    shutil.copytree(tiny_model, missing)  # the model arrives (a volume mounted late, a pull)
    wait_until(lambda: client.get("/health/ready").status_code == 200, 30,
               what="the worker to retry its first load")  # fmt: skip
    assert client.post("/predict", json={"image": ZEROS}).status_code == 200
