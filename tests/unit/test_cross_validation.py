"""Stratified folds: disjoint, covering, each digit's share kept, the same for the same seed."""

from __future__ import annotations

import numpy as np
import pytest

from mnist_pipeline.cross_validation import stratified_folds, summarise


def test_three_folds_are_disjoint_cover_the_split_and_keep_each_digits_share() -> None:
    rng = np.random.default_rng(0)
    labels = rng.choice(10, size=600, p=np.linspace(1, 2, 10) / np.linspace(1, 2, 10).sum())
    folds = stratified_folds(labels, 3, seed=42)
    assert [f.number for f in folds] == [0, 1, 2]
    held = np.concatenate([f.held_out for f in folds])
    assert sorted(held.tolist()) == list(range(600))  # disjoint and covering
    share = np.bincount(labels, minlength=10) / len(labels)
    for fold in folds:
        assert set(fold.train.tolist()).isdisjoint(fold.held_out.tolist())
        assert len(fold.train) + len(fold.held_out) == 600
        fold_share = np.bincount(labels[fold.held_out], minlength=10) / len(fold.held_out)
        assert np.abs(fold_share - share).max() < 0.01  # stratified, not merely random
    again = stratified_folds(labels, 3, seed=42)
    assert all(np.array_equal(a.held_out, b.held_out) for a, b in zip(folds, again, strict=True))
    other = stratified_folds(labels, 3, seed=7)
    assert not np.array_equal(folds[0].held_out, other[0].held_out)


def test_bad_fold_counts_say_what_to_change() -> None:
    labels = np.repeat(np.arange(10), 2)
    with pytest.raises(ValueError, match="at least 2"):
        stratified_folds(labels, 1, seed=0)
    with pytest.raises(ValueError, match="only 2 training images; use fewer folds"):
        stratified_folds(labels, 3, seed=0)


def test_summary_gives_mean_and_sample_std() -> None:
    summary = summarise([0.99, 0.98, 0.97])
    assert summary["mean"] == pytest.approx(0.98)
    assert summary["std"] == pytest.approx(0.01)
    assert summary["fold_accuracy"] == [0.99, 0.98, 0.97]
