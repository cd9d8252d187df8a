import keras
import numpy as np
import pytest
import tensorflow as tf

from mnist_pipeline.augmentation import random_shift
from mnist_pipeline.models import build_model
from mnist_pipeline.params import TrainParams


@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_builders_take_uint8_images_and_return_probabilities(arch: str) -> None:
    model = build_model(TrainParams(arch=arch, filters=8, units=16))  # type: ignore[arg-type]
    assert model.input.shape == (None, 28, 28)
    assert model.input.dtype == "uint8"
    assert model.output.shape == (None, 10)
    images = np.random.default_rng(0).integers(0, 256, (4, 28, 28), dtype=np.uint8)
    probs = keras.ops.convert_to_numpy(model(images, training=False))
    assert probs.shape == (4, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_scaling_is_inside_the_model() -> None:
    model = build_model(TrainParams(arch="mlp", units=8))
    assert model.layers[1].name == "scale_0_1"
    scaled = keras.ops.convert_to_numpy(model.layers[1](np.full((1, 28, 28), 255, np.uint8)))
    np.testing.assert_allclose(scaled, 1.0)


def test_random_shift_moves_each_image_without_losing_ink() -> None:
    images = np.zeros((64, 28, 28), np.uint8)
    images[:, 10:18, 10:18] = 200
    shifted = random_shift(tf.constant(images), max_shift=2, seed=3).numpy()
    assert shifted.shape == images.shape
    assert shifted.dtype == np.uint8
    np.testing.assert_array_equal(shifted.sum(axis=(1, 2)), images.sum(axis=(1, 2)))
    # Shifts differ per image, not one shift for the whole batch.
    assert len({s.tobytes() for s in shifted}) > 5


def test_no_shift_is_identity() -> None:
    images = tf.constant(np.arange(2 * 28 * 28, dtype=np.int32).reshape(2, 28, 28))
    assert random_shift(images, max_shift=0, seed=0) is images
