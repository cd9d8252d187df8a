import numpy as np
import pytest

from mnist_pipeline.dataset import RawMnist, class_counts
from mnist_pipeline.errors import PipelineError
from mnist_pipeline.params import PreprocessParams
from mnist_pipeline.stages.preprocess import data_report, prepare, split_train_val
from tests.support.data import make_digits


def test_split_is_stratified_and_disjoint() -> None:
    train = make_digits(1000, seed=0)
    tr, val = split_train_val(train, PreprocessParams(val_size=200), seed=1)
    assert (len(tr), len(val)) == (800, 200)
    overall = np.array(class_counts(train.y)) / len(train)
    share = np.array(class_counts(val.y)) / len(val)
    # Stratified: each class's share in val is within one image of its share overall.
    assert np.all(np.abs(share - overall) <= 1 / len(val) + 1e-9)
    assert not {x.tobytes() for x in tr.x} & {x.tobytes() for x in val.x}


def test_split_is_seeded() -> None:
    train = make_digits(300, seed=0)
    a = split_train_val(train, PreprocessParams(val_size=0.2), seed=5)[1]
    b = split_train_val(train, PreprocessParams(val_size=0.2), seed=5)[1]
    c = split_train_val(train, PreprocessParams(val_size=0.2), seed=6)[1]
    np.testing.assert_array_equal(a.x, b.x)
    assert not np.array_equal(a.x, c.x)


def test_limit_keeps_the_first_n_images() -> None:
    train = make_digits(500, seed=0)
    tr, val = split_train_val(train, PreprocessParams(val_size=0.25, limit=200), seed=0)
    kept = {x.tobytes() for x in train.x[:200]}
    assert len(tr) + len(val) == 200
    assert {x.tobytes() for x in np.concatenate([tr.x, val.x])} == kept


def test_too_few_images_to_stratify() -> None:
    with pytest.raises(PipelineError, match="raise preprocess.limit or lower"):
        split_train_val(make_digits(500, 0), PreprocessParams(val_size=5, limit=40), seed=0)


def test_prepare_refuses_leaks_and_reports_counts(tiny_raw: RawMnist) -> None:
    splits = prepare(tiny_raw, PreprocessParams(val_size=100), seed=0)
    report = data_report(splits)
    assert report["val"]["count"] == 100
    assert report["test"]["per_class"] == {str(c): 20 for c in range(10)}
    leaky = RawMnist(train=tiny_raw.train, test=tiny_raw.train)
    with pytest.raises(PipelineError, match="duplicated split"):
        prepare(leaky, PreprocessParams(val_size=100), seed=0)
