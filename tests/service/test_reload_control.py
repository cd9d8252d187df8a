"""The reload record that every worker follows: generations are never lost or repeated."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from app.reload import read_control, write_control


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
