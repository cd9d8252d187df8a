"""Every prediction gets a server-made event id; ``POST /feedback`` records its true label.

In-process, against the embedded SQLite log and against a real Redis stream: the same routes,
the same answers, and the monitor's one reading interface sees the same events and labels.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from app import create_app, lifecycle
from app.settings import Settings
from mnist_contracts.event_store import carries_image
from mnist_contracts.event_store.redis_stream import RedisEvents
from mnist_contracts.event_store.sqlite import SqliteEvents
from tests.support.redis_server import RedisServer
from tests.support.serving import started

ZEROS = [[0] * 28 for _ in range(28)]


def ones(value: int) -> list[list[int]]:
    return [[value] * 28 for _ in range(28)]


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def sink(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str | None]:
    """None: the embedded log; else the URL of a real Redis."""
    if request.param == "sqlite":
        yield None
    else:
        server: RedisServer = request.getfixturevalue("redis_broker")
        yield server.url


@pytest.fixture
def service(make_settings: Callable[..., Settings], sink: str | None) -> Iterator[FlaskClient]:
    with started(make_settings(events_url=sink)) as app, app.test_client() as client:
        yield client


def test_each_image_gets_a_server_event_id_and_its_label_back(
    service: FlaskClient, sink: str | None, make_settings: Callable[..., Settings]
) -> None:
    reply = service.post(
        "/predict", json={"images": [ZEROS, ones(9)]}, headers={"X-Request-ID": "client-chosen"}
    )
    predictions = reply.get_json()["predictions"]
    ids = [p["event_id"] for p in predictions]
    assert len(set(ids)) == 2
    assert "client-chosen" not in ids
    assert all(len(i) == 32 for i in ids)

    first = predictions[0]
    right = service.post("/feedback", json={"event_id": ids[0], "label": first["predicted_class"]})
    assert right.status_code == 200
    assert right.get_json() == {
        "event_id": ids[0], "label": first["predicted_class"],
        "predicted_class": first["predicted_class"], "correct": True,
    }  # fmt: skip
    wrong_label = (predictions[1]["predicted_class"] + 1) % 10
    wrong = service.post("/feedback", json={"event_id": ids[1], "label": wrong_label})
    assert wrong.get_json()["correct"] is False

    again = service.post("/feedback", json={"event_id": ids[0], "label": 3})
    assert again.status_code == 409
    assert "already has a label" in again.get_json()["message"]
    unknown = service.post("/feedback", json={"event_id": "0" * 32, "label": 3})
    assert unknown.status_code == 404
    assert "no prediction has event_id" in unknown.get_json()["message"]
    for bad in ({"event_id": ids[0]}, {"event_id": "x", "label": 1},
                {"event_id": ids[0], "label": 10}, {"event_id": ids[0], "label": "1"}):  # fmt: skip
        assert service.post("/feedback", json=bad).status_code == 422

    # The monitor's one interface reads both events and labels from either store.
    lifecycle.stop(service.application)  # what a worker's exit does: everything written
    source = RedisEvents(sink) if sink else SqliteEvents(make_settings().prediction_log)
    window = source.window(100)
    assert set(window.event_ids) == set(ids)
    assert window.labels == {ids[0]: first["predicted_class"], ids[1]: wrong_label}
    assert window.has_image.all()
    assert window.images.shape == (2, 28, 28)
    assert int(window.images[window.event_ids.index(ids[1])].max()) == 9
    assert {e.event_id for e in source.labelled()} == set(ids)


def test_compatibility_routes_return_event_ids(service: FlaskClient) -> None:
    tfs = service.post("/v1/models/mnist:predict", json={"instances": [ZEROS, ZEROS]})
    tfs_ids = tfs.headers["X-Event-IDs"].split(",")
    assert len(set(tfs_ids)) == 2
    tensor = {"name": "images", "shape": [1, 28, 28], "datatype": "UINT8", "data": [0] * 784}
    v2 = service.post("/v2/models/mnist/infer", json={"inputs": [tensor]})
    (v2_id,) = v2.get_json()["parameters"]["event_ids"]
    for event_id in (*tfs_ids, v2_id):
        assert service.post("/feedback", json={"event_id": event_id, "label": 0}).status_code == 200


def test_feedback_needs_the_client_key_when_one_is_set(
    make_settings: Callable[..., Settings],
) -> None:
    app = create_app(make_settings(api_key="k-test"))  # pragma: allowlist secret
    with app.test_client() as client:  # access and an unknown id: no model, nothing started
        refused = client.post("/feedback", json={"event_id": "0" * 32, "label": 1})
        assert refused.status_code == 401
        allowed = client.post(
            "/feedback", json={"event_id": "0" * 32, "label": 1}, headers={"X-API-Key": "k-test"}
        )
        assert allowed.status_code == 404


@pytest.mark.redis
def test_the_stream_is_bounded_and_carries_a_share_of_inputs(
    make_settings: Callable[..., Settings], redis_broker: RedisServer
) -> None:
    def publish(prefix: str, **settings: object) -> list[str]:
        ids: list[str] = []
        with started(make_settings(events_url=redis_broker.url, events_prefix=prefix,
                                   **settings)) as app, app.test_client() as client:  # fmt: skip
            for _ in range(30):
                batch = client.post("/predict", json={"images": [ZEROS] * 20}).get_json()
                ids += [p["event_id"] for p in batch["predictions"]]
        return ids

    ids = publish("bounded", events_maxlen=10)
    length = redis_broker.client().xlen("bounded:predictions")
    # MAXLEN ~ trims whole stream nodes (100 entries each by default): bounded, not exact.
    assert 10 <= length <= 10 + 100 < len(ids)

    publish("sampled", events_image_share=0.25)
    window = RedisEvents(redis_broker.url, "sampled").window(1000)
    assert len(window) == 600
    kept = [i for i, has in zip(window.event_ids, window.has_image, strict=True) if has]
    assert kept == [i for i in window.event_ids if carries_image(i, 0.25)]
    assert 0.1 < len(kept) / len(window) < 0.45
    assert window.images.shape == (len(kept), 28, 28)
