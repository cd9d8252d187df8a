"""A candidate in shadow on live traffic, and live mistakes back into training.

In-process pipeline stages and service, the embedded MLflow store, a real Redis: the candidate
answers the logged inputs in the `mnist shadow` consumer, the report gives its disagreement, flips
and accuracies on labelled events, and `promote` requires it when register.shadow_min_events
is set. Then `mnist collect` turns the labelled events into data/feedback and preprocess adds
them to the training split.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import yaml

from app.settings import Settings
from app.shadow_consumer import consume
from mnist_pipeline.ops import collect
from mnist_pipeline.shadow_verdict import Candidate, from_stream, load_candidate, replay
from tests.support import run_mnist
from tests.support.data import make_digits
from tests.support.project_repo import git
from tests.support.redis_server import RedisServer
from tests.support.serving import started
from tests.support.stages import run_evaluate, run_preprocess, run_register, run_train

pytestmark = [pytest.mark.slow, pytest.mark.redis]
FLAG = (27, 27)  # a bright corner pixel marks the images the disagreeing candidate flips


def set_params(w: Path, **sections: dict[str, object]) -> None:
    params = yaml.safe_load((w / "params.yaml").read_text())
    for section, values in sections.items():
        params.setdefault(section, {}).update(values)
    (w / "params.yaml").write_text(yaml.safe_dump(params))
    git(w, "commit", "-qam", "params")


def serve_and_label(w: Path, events_url: str | None) -> tuple[list[str], list[int], int]:
    """200 live predictions through the service, a quarter flagged; every true label sent back.

    Returns:
        Event ids, true labels, and how many answers were right.
    """
    live = make_digits(200, seed=11)
    images = live.x.copy()
    images[::4, FLAG[0], FLAG[1]] = 255
    settings = Settings(
        model_dir=w / "models/mnist", prediction_log=w / "var/predictions.db",
        state_dir=w / "var/state", metrics_file=w / "reports/metrics.json", events_url=events_url,
    )  # fmt: skip
    ids, right = [], 0
    with started(settings) as app, app.test_client() as client:
        for image, label in zip(images, live.y.tolist(), strict=True):
            (p,) = client.post("/predict", json={"image": image.tolist()}).get_json()["predictions"]
            ids.append(p["event_id"])
            right += p["predicted_class"] == label
            reply = client.post("/feedback", json={"event_id": p["event_id"], "label": label})
            assert reply.status_code == 200
    return ids, live.y.tolist(), right


def flipping(real: Candidate) -> Candidate:
    """The same model, except that it answers the next class on flagged images."""

    def predict(images: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        probs = real.predict(images)
        flagged = images[:, FLAG[0], FLAG[1]] == 255
        probs[flagged] = np.roll(probs[flagged], 1, axis=1)
        return probs

    return Candidate(predict, "sha256:flipping")


@pytest.fixture
def registered(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A trained, registered candidate that waits for shadow evaluation before production."""
    monkeypatch.chdir(workdir)
    run_preprocess(workdir)
    set_params(workdir, register={
        "min_accuracy": 0.5, "tolerance": 1.0,
        "shadow_min_events": 150, "shadow_max_disagreement": 0.05,
    })  # fmt: skip
    run_train(workdir)
    run_evaluate(workdir)
    git(workdir, "add", ".dvc", ".dvcignore")  # DVCLive's `dvc init`, committed as a user would
    git(workdir, "commit", "-qm", "dvc")
    record = run_register(workdir)
    assert record["aliases"] == {"candidate": "1"}  # production waits for the shadow report
    assert record["promotion"].startswith("waits for a shadow evaluation")
    return workdir


def test_shadow_on_the_stream_reports_flips_and_gates_promotion(
    registered: Path, redis_broker: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    ids, labels, right = serve_and_label(registered, redis_broker.url)
    same = load_candidate("models:/mnist-classifier@candidate")
    assert consume(redis_broker.url, "mnist", same, once=True) == 200
    assert consume(redis_broker.url, "mnist", flipping(same), once=True) == 200

    flipped = from_stream(redis_broker.url, "mnist", "sha256:flipping", 1000)
    assert flipped.events == 200
    assert flipped.disagreement == pytest.approx(50 / 200)  # exactly the flagged quarter
    assert int(flipped.flips.sum() - np.trace(flipped.flips)) == 50
    assert flipped.labelled == 200
    assert flipped.accuracy(flipped.production_correct) == pytest.approx(right / 200)
    assert flipped.verdict(150, 0.05)[0] is False
    assert "disagrees with production on 25.00%" in flipped.verdict(150, 0.05)[1]

    # The report of a too-short shadow run: too little data to decide (3), promotion refused (2).
    shadow_report = ("registry", "shadow-report", "--events", redis_broker.url)
    assert run_mnist(*shadow_report, "--last", "100") == 3
    assert "blocked: 100 shadow events, at least 150 needed" in capsys.readouterr().out
    assert run_mnist("registry", "promote", "1", "--events", redis_broker.url, "--last", "100") == 2
    assert "not promoted: shadow evaluation blocked" in capsys.readouterr().err

    assert run_mnist(*shadow_report, "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["events"] == 200
    assert report["disagreement"] == 0.0
    assert report["passed"] is True
    assert report["candidate_accuracy"] == report["production_accuracy"] == right / 200
    assert run_mnist("registry", "promote", "1", "--events", redis_broker.url) == 0
    assert "v1 is production" in capsys.readouterr().out
    assert len(set(ids)) == len(labels) == 200


def test_replay_of_the_embedded_log_and_live_mistakes_into_training(
    registered: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ids, labels, right = serve_and_label(registered, None)
    log = registered / "var/predictions.db"
    same = load_candidate(str(registered / "models/mnist"))
    assert replay(log, same, 1000).disagreement == 0.0
    result = replay(log, flipping(same), 120)  # the last 120 inputs: 30 of them flagged
    assert (result.events, result.disagreement) == (120, pytest.approx(0.25))
    assert run_mnist("registry", "shadow-report", "--events", str(log)) == 0
    assert "passes: 200 events, disagreement 0.00%" in capsys.readouterr().out

    # Live mistakes become training data: collected once (a second run adds nothing) ...
    out = registered / "data/feedback/feedback.npz"
    assert collect.collect(log, "mnist", out) == (200, 200, 0)
    assert collect.collect(log, "mnist", out) == (0, 200, 0)
    first = out.read_bytes()
    out.unlink()
    collect.collect(log, "mnist", out)
    assert out.read_bytes() == first  # the same events give the same bytes
    # ... and preprocess adds them to the training split when asked, never to val or test.
    before = json.loads((registered / "reports/data.json").read_text())
    set_params(registered, preprocess={"feedback": True})
    run_preprocess(registered)
    after = json.loads((registered / "reports/data.json").read_text())
    assert after["train"]["count"] == before["train"]["count"] + 200
    assert (after["val"], after["test"]) == (before["val"], before["test"])
    assert after["feedback"] == {"added": 200, "left_out": 0, "model_was_wrong": 200 - right}
    assert sorted(ids) == sorted(i.decode() for i in np.load(out)["ids"])
    assert sorted(labels) == sorted(np.load(out)["y"].tolist())
