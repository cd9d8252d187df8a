"""The candidates' comparison: what the search's winner trains with, how rankings are checked."""

from __future__ import annotations

import pytest

from mnist_pipeline.ops.candidates import (
    Candidate,
    choose,
    rank_agreement,
    ratio,
    spread_picks,
    tuned_overrides,
)
from mnist_pipeline.params import Params


def test_the_tuned_candidate_drops_the_search_budget_and_unchanged_values() -> None:
    best = {
        "preprocess.limit": 20000,  # the search's subset: the candidate trains on every image
        "train.epochs": 4,  # ... and for the default's epochs
        "train.learning_rate": 0.0021,
        "train.filters": 32,  # the default already: no override
        "train.augment.max_shift": 3,
    }
    assert tuned_overrides(best, Params()) == {
        "train.learning_rate": 0.0021,
        "train.augment.max_shift": 3,
    }


def test_a_candidates_command_reproduces_it() -> None:
    candidate = Candidate("x", "", {"train.ensemble": 5, "preprocess.limit": None})
    assert candidate.experiment == "cand-x"
    assert candidate.command == "dvc exp run -S train.ensemble=5 -S preprocess.limit=null"
    assert Candidate("default", "", {}).command == "dvc exp run"


@pytest.mark.parametrize(
    ("values", "n", "expected"),
    [
        ([0.90, 0.99, 0.95, 0.97, 0.93], 3, [1, 2, 0]),  # best, middle, worst
        ([0.5, 0.7], 4, [1, 0]),  # fewer trials than picks: all, best first
        ([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7], 4, [6, 4, 2, 0]),
    ],
)
def test_picks_spread_over_the_ranking(values: list[float], n: int, expected: list[int]) -> None:
    assert spread_picks(values, n) == expected


def test_rank_agreement_says_when_the_order_holds_and_when_it_does_not() -> None:
    same = rank_agreement([0.99, 0.97, 0.95, 0.90], [0.995, 0.993, 0.990, 0.980])
    assert same["kendall_tau"] == 1.0
    assert same["same_best"] is True
    swapped = rank_agreement([0.99, 0.97, 0.95, 0.90], [0.980, 0.990, 0.993, 0.995])
    assert swapped["kendall_tau"] == -1.0
    assert swapped["same_best"] is False


def test_ratios_and_the_choice_on_validation_not_test() -> None:
    assert ratio(3.0, 2.0) == 1.5
    assert ratio(None, 2.0) is None
    assert ratio(1.0, 0.0) is None
    rows = [
        {"name": "default", "val_accuracy": 0.9940, "test_accuracy": 0.999},
        {"name": "ensemble5", "val_accuracy": 0.9960, "test_accuracy": 0.990},
    ]
    chosen = choose(rows, noise=0.0009)
    assert chosen["name"] == "ensemble5"  # +0.20 points on validation; the test set is ignored
    assert "+0.20 points" in chosen["reason"]


def test_a_gain_inside_the_seed_noise_keeps_the_default() -> None:
    rows = [
        {"name": "default", "val_accuracy": 0.9948},
        {"name": "tuned", "val_accuracy": 0.9950},  # one image of 5,000 better
    ]
    chosen = choose(rows, noise=0.0009)
    assert chosen["name"] == "default"
    assert "seed noise (0.09 points)" in chosen["reason"]
