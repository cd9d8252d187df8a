"""Keras model builders, chosen by ``train.arch``.

Every model takes raw ``uint8`` images ``[N,28,28]`` (0-255, white digit on black) and returns
class probabilities. Scaling to 0-1 is the first layer of the model, so the exported graph carries
it and a caller can never normalise differently from training.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
from keras import layers

from mnist_pipeline.calibration import EPSILON
from mnist_pipeline.dataset import IMAGE_SHAPE, NUM_CLASSES
from mnist_pipeline.params import TrainParams

# Keras' default 0.99 leaves the moving statistics near their initial values after a few dozen
# steps, which breaks inference on short runs; 0.9 settles within ~50 steps and is as good on
# full runs.
_BN_MOMENTUM = 0.9


def _inputs() -> tuple[keras.KerasTensor, keras.KerasTensor]:
    images = keras.Input(shape=IMAGE_SHAPE, dtype="uint8", name="images")
    scaled = layers.Rescaling(1.0 / 255.0, name="scale_0_1")(images)
    return images, scaled


def _dense_bn_relu(x: keras.KerasTensor, units: int, name: str) -> keras.KerasTensor:
    x = layers.Dense(units, use_bias=False, name=f"{name}_dense")(x)
    x = layers.BatchNormalization(momentum=_BN_MOMENTUM, name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def _conv_bn_relu(x: keras.KerasTensor, filters: int, kernel: int, name: str) -> keras.KerasTensor:
    # No bias: batch norm's shift makes it redundant.
    x = layers.Conv2D(filters, kernel, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(momentum=_BN_MOMENTUM, name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def build_mlp(params: TrainParams) -> keras.Model:
    """A two-hidden-layer perceptron: the baseline.

    Args:
        params: Uses ``units`` and ``dropout``.

    Returns:
        An uncompiled model ``uint8[N,28,28] -> float32[N,10]``.
    """
    images, x = _inputs()
    x = layers.Flatten(name="flatten")(x)
    for i in (1, 2):
        x = _dense_bn_relu(x, params.units, f"hidden{i}")
        x = layers.Dropout(params.dropout, name=f"hidden{i}_dropout")(x)
    probs = layers.Dense(NUM_CLASSES, activation="softmax", name="probabilities")(x)
    return keras.Model(images, probs, name="mlp")


def build_cnn(params: TrainParams) -> keras.Model:
    """A batch-normalised convnet: conv5-pool, conv3-conv3-pool, dense.

    One wide 5x5 convolution at full resolution and the 3x3 pair at half resolution keep the
    receptive field of a VGG-style 2x(conv-conv-pool) net at a fraction of its CPU time.

    Args:
        params: Uses ``filters``, ``units`` and ``dropout``.

    Returns:
        An uncompiled model ``uint8[N,28,28] -> float32[N,10]``.
    """
    images, x = _inputs()
    x = layers.Reshape((*IMAGE_SHAPE, 1), name="channel")(x)
    x = _conv_bn_relu(x, params.filters, 5, "block1")
    x = layers.MaxPooling2D(name="block1_pool")(x)
    x = _conv_bn_relu(x, 2 * params.filters, 3, "block2a")
    x = _conv_bn_relu(x, 2 * params.filters, 3, "block2b")
    x = layers.MaxPooling2D(name="block2_pool")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dropout(params.dropout, name="flatten_dropout")(x)
    x = _dense_bn_relu(x, params.units, "head")
    x = layers.Dropout(params.dropout, name="head_dropout")(x)
    probs = layers.Dense(NUM_CLASSES, activation="softmax", name="probabilities")(x)
    return keras.Model(images, probs, name="cnn")


BUILDERS: dict[str, Callable[[TrainParams], keras.Model]] = {"mlp": build_mlp, "cnn": build_cnn}


def build_model(params: TrainParams) -> keras.Model:
    """Build the architecture named by ``params.arch``.

    Args:
        params: The ``train`` section.

    Returns:
        An uncompiled model.
    """
    return BUILDERS[params.arch](params)


class MeanOfMembers(layers.Layer):  # type: ignore[misc]
    """The members' probabilities averaged inside the graph: one ``serve`` for an ensemble."""

    def __init__(self, members: list[keras.Model], **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.members = list(members)  # tracked in order: the export lists their weights by index

    def call(self, images: keras.KerasTensor) -> keras.KerasTensor:
        """The mean of the members' outputs for ``images``."""
        outputs = [member(images, training=False) for member in self.members]
        return keras.ops.mean(keras.ops.stack(outputs), axis=0)


def ensemble(members: list[keras.Model]) -> keras.Model:
    """One model whose output is the mean of the members' probabilities (``train.ensemble``).

    One member is returned as it is, so ``train.ensemble: 1`` exports today's bytes. More are
    wrapped in :class:`MeanOfMembers`: the export, its TFLite variants, the service and every
    client see one ``uint8[N,28,28] -> float32[N,10]`` model.

    Args:
        members: Trained models with the same input and output.

    Returns:
        The ensemble, for inference (it is never trained as a whole).
    """
    if len(members) == 1:
        return members[0]
    images = keras.Input(shape=IMAGE_SHAPE, dtype="uint8", name="images")
    probs = MeanOfMembers(members, name="mean_of_members")(images)
    return keras.Model(images, probs, name=f"ensemble_of_{len(members)}")


class Temperature(layers.Layer):  # type: ignore[misc]
    """Probabilities rescaled by a fitted temperature, ``softmax(log(p) / T)``, inside the graph.

    No weights: the exported variables stay the model's, and every route, TFLite variant and
    client gets the calibrated probabilities (:func:`mnist_pipeline.calibration.fit_temperature`).
    """

    def __init__(self, temperature: float, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.temperature = float(temperature)

    def call(self, probabilities: keras.KerasTensor) -> keras.KerasTensor:
        """The rescaled probabilities."""
        logits = keras.ops.log(keras.ops.maximum(probabilities, EPSILON)) / self.temperature
        return keras.ops.softmax(logits, axis=-1)

    def get_config(self) -> dict[str, object]:
        """Keras' config, with the temperature."""
        return {**super().get_config(), "temperature": self.temperature}


def calibrated(model: keras.Model, temperature: float) -> keras.Model:
    """``model`` with :class:`Temperature` after its output (the same model when T is 1).

    The new model reuses the layers (an ensemble keeps its members), so nothing is trained again.

    Args:
        model: A model whose output is probabilities.
        temperature: The fitted T.

    Returns:
        The calibrated model.
    """
    if temperature == 1.0:
        return model
    probs = Temperature(temperature, name="temperature")(model.outputs[0])
    return keras.Model(model.inputs, probs, name=f"{model.name}_calibrated")
