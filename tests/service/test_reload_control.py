"""The reload record that every worker follows: generations are never lost or repeated."""

from __future__ import annotations

import multiprocessing
import shutil
from collections.abc import Callable
from pathlib import Path

from app import create_app
from app.reload import ReloadWatcher, read_control, write_control
from app.settings import Settings
from app.state import RELOAD


def _write_many(state_dir: Path, worker: int, count: int) -> list[int]:
    return [write_control(state_dir, f"source-{worker}-{i}") for i in range(count)]


def test_concurrent_reloads_in_many_processes_get_distinct_generations(tmp_path: Path) -> None:
    # Gunicorn workers are processes: four of them accept reloads at the same moment.
    # spawn, not fork: the test process may hold TensorFlow's threads.
    context = multiprocessing.get_context("spawn")
    with context.Pool(4) as pool:
        results = pool.starmap(_write_many, [(tmp_path, w, 25) for w in range(4)])
    generations = sorted(g for result in results for g in result)
    assert generations == list(range(1, 101))
    control = read_control(tmp_path)
    assert control is not None
    assert control[0] == 100


def test_a_worker_that_cannot_load_a_reload_is_not_ready_and_retries(
    make_settings: Callable[..., Settings], tiny_model: Path, other_model: Path, tmp_path: Path
) -> None:
    """Another worker accepted a reload that this one cannot load yet: never silently behind."""
    served = tmp_path / "served"
    shutil.copytree(tiny_model, served)
    settings = make_settings(model_dir=served)
    app = create_app(settings)  # not started: the first load and the polls are driven by hand
    client = app.test_client()
    watcher: ReloadWatcher = app.extensions[RELOAD]
    watcher.first_load(settings.model_source)
    before = client.get("/health/ready").get_json()["model_version"]

    shutil.rmtree(served)  # the other worker's reload, while this worker's disk is behind
    write_control(settings.state_dir, str(served))
    watcher.poll_once()
    not_ready = client.get("/health/ready")
    assert not_ready.status_code == 503
    assert "failed to load in this worker; retrying" in not_ready.get_json()["message"]
    # It keeps answering with the model it has while the balancer takes it out.
    assert client.get("/metadata").get_json()["model_version"] == before

    shutil.copytree(other_model, served)  # the files arrive: the next poll catches up
    watcher.poll_once()
    ready = client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.get_json()["model_version"] != before
