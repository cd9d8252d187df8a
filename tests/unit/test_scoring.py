import numpy as np

from mnist_pipeline.stages.evaluate import confusion_rows, score, worst_mistakes


def one_hot_probs(predicted: list[int], confidence: list[float]) -> np.ndarray:
    probs = np.zeros((len(predicted), 10), np.float32)
    for i, (p, c) in enumerate(zip(predicted, confidence, strict=True)):
        probs[i] = (1 - c) / 9
        probs[i, p] = c
    return probs


def test_score_on_a_hand_checked_example() -> None:
    labels = np.array([0, 0, 1, 1, 2], np.uint8)
    probs = one_hot_probs([0, 1, 1, 1, 2], [0.9, 0.6, 0.8, 0.7, 0.5])
    metrics = score(labels, probs)
    assert metrics["accuracy"] == 0.8
    assert metrics["errors"] == 1
    assert metrics["per_class"]["0"] == {"precision": 1.0, "recall": 0.5, "support": 2}
    assert metrics["per_class"]["1"]["precision"] == round(2 / 3, 6)
    expected_loss = -np.mean(np.log([0.9, (1 - 0.6) / 9, 0.8, 0.7, 0.5]))
    assert abs(metrics["loss"] - expected_loss) < 1e-5
    # macro F1 over the ten classes; absent classes count as 0
    f1 = [2 / 3, 0.8, 1.0] + [0.0] * 7
    assert abs(metrics["f1_macro"] - np.mean(f1)) < 1e-6


def test_worst_mistakes_are_the_most_confident_errors() -> None:
    labels = np.array([0, 1, 2, 3], np.uint8)
    probs = one_hot_probs([5, 1, 6, 7], [0.6, 0.99, 0.95, 0.6])
    assert worst_mistakes(labels, probs, 2).tolist() == [2, 0]
    assert worst_mistakes(labels, probs, 10).tolist() == [2, 0, 3]


def test_confusion_rows() -> None:
    rows = confusion_rows(np.array([3, 4], np.uint8), np.array([3, 9]))
    assert rows == [{"actual": 3, "predicted": 3}, {"actual": 4, "predicted": 9}]
