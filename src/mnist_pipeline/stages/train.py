"""Stage ``train``: fit the configured model, seeded and deterministic, and export a SavedModel."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path

import keras
import tensorflow as tf
from dvclive import Live

from mnist_contracts import paths
from mnist_contracts.model import params_digest, read_identity
from mnist_pipeline import tracking
from mnist_pipeline.augmentation import random_shift
from mnist_pipeline.cli import run_stage
from mnist_pipeline.dataset import NUM_CLASSES, Split, load_split
from mnist_pipeline.epoch_metrics import DvcLiveSink, EpochMetrics, EpochSink
from mnist_pipeline.models import build_model
from mnist_pipeline.params import Params, TrainParams, flatten, load_params
from mnist_pipeline.saved_model import export

log = logging.getLogger(__name__)


def make_deterministic(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow and force deterministic TensorFlow kernels.

    Same params on the same hardware with the same thread counts then give the same weights.

    Args:
        seed: The global seed.
    """
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def learning_rate(
    params: TrainParams, steps_per_epoch: int
) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """The learning rate or schedule named by ``lr_schedule``.

    Args:
        params: Uses ``learning_rate``, ``lr_schedule``, ``warmup_epochs`` and ``epochs``.
        steps_per_epoch: Optimizer steps in one epoch.

    Returns:
        A constant, or a cosine decay to zero after an optional linear warm-up.
    """
    if params.lr_schedule == "constant":
        return params.learning_rate
    total = params.epochs * steps_per_epoch
    warmup = int(params.warmup_epochs * steps_per_epoch)
    if warmup == 0:
        return keras.optimizers.schedules.CosineDecay(params.learning_rate, total)
    return keras.optimizers.schedules.CosineDecay(
        0.0, total - warmup, warmup_target=params.learning_rate, warmup_steps=warmup
    )


def compile_model(model: keras.Model, params: TrainParams, steps_per_epoch: int) -> None:
    """Attach optimizer, loss (with optional label smoothing) and accuracy.

    Args:
        model: The model to compile.
        params: The ``train`` section.
        steps_per_epoch: Optimizer steps in one epoch, for the schedule.
    """
    rate = learning_rate(params, steps_per_epoch)
    optimizer = (
        keras.optimizers.Adam(rate)
        if params.optimizer == "adam"
        else keras.optimizers.SGD(rate, momentum=0.9, nesterov=True)
    )
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=params.label_smoothing),
        metrics=["accuracy"],
    )


def make_dataset(
    split: Split, batch_size: int, *, seed: int, shuffle: bool, max_shift: int = 0
) -> tf.data.Dataset:
    """Batches of ``(uint8 images, one-hot labels)``, shuffled and augmented for training.

    Args:
        split: Images and labels.
        batch_size: Batch size.
        seed: Seed for the shuffle order and the augmentation.
        shuffle: Reshuffle every epoch (training only).
        max_shift: Random shift in pixels (0 = none).

    Returns:
        The dataset.
    """
    ds = tf.data.Dataset.from_tensor_slices((split.x, split.y))
    if shuffle:
        ds = ds.shuffle(len(split), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)

    def prepare(images: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return random_shift(images, max_shift, seed), tf.one_hot(labels, NUM_CLASSES)

    return ds.map(prepare).prefetch(2)


def fit(
    train: Split, val: Split, params: TrainParams, seed: int, sinks: Sequence[EpochSink] = ()
) -> tuple[keras.Model, int]:
    """Build, compile and fit the model; report every epoch to ``sinks``.

    Args:
        train: Training split.
        val: Validation split (monitored for early stopping).
        params: The ``train`` section.
        seed: The global seed.
        sinks: Trackers that receive each epoch's metrics.

    Returns:
        The trained model (best weights when early stopping is on) and the epochs it ran.
    """
    make_deterministic(seed)
    model = build_model(params)
    steps = math.ceil(len(train) / params.batch_size)
    compile_model(model, params, steps)
    callbacks: list[keras.callbacks.Callback] = [EpochMetrics(sinks)]
    if params.early_stopping.patience is not None:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=params.early_stopping.monitor,
                patience=params.early_stopping.patience,
                restore_best_weights=True,
            )
        )
    train_ds = make_dataset(
        train,
        params.batch_size,
        seed=seed,
        shuffle=True,
        max_shift=params.augment.max_shift,
    )
    val_ds = make_dataset(val, 1000, seed=seed, shuffle=False)
    history = model.fit(
        train_ds,
        validation_data=val_ds,
        epochs=params.epochs,
        callbacks=callbacks,
        shuffle=False,  # the dataset reshuffles itself, seeded
        verbose=2,
    )
    return model, len(history.epoch)


def model_params_digest(params: Params) -> str:
    """The digest of exactly the params this stage declares that shape the model.

    ``seed`` and ``train``: the data comes in through ``data/prepared`` (hashed by DVC), and
    ``tracking`` says where runs are logged, not what is learnt.

    Args:
        params: All params.

    Returns:
        The params digest written into the export's identity.
    """
    flat = flatten(params)
    return params_digest({k: v for k, v in flat.items() if k == "seed" or k.startswith("train.")})


def main(root: Path = Path()) -> None:
    """Train on ``data/prepared`` and export ``models/mnist``; curves go to ``reports/train``.

    Opens the pipeline's MLflow run and tags it with the exported model's digest, by which
    evaluate and register find it. What varies from run to run (wall time, images/s) goes to
    MLflow only: every file this stage writes is the same for the same params and data.

    Args:
        root: The repository root; paths come from :mod:`mnist_contracts.paths`.
    """
    params = load_params(root / paths.PARAMS_FILE)
    data_dir, model_dir = root / paths.PREPARED_DIR, root / paths.MODEL_DIR
    live_dir = root / paths.TRAIN_LIVE_DIR
    train, val = load_split("train", data_dir), load_split("val", data_dir)
    with tracking.pipeline_run(params.tracking.experiment, flatten(params)):
        started = time.perf_counter()
        # dvcyaml=False: dvc.yaml is written by hand and declares these plots itself.
        with Live(str(live_dir), dvcyaml=False, save_dvc_exp=False, report=None) as live:
            sinks: list[EpochSink] = [DvcLiveSink(live), tracking.MlflowSink()]
            model, epochs_run = fit(train, val, params.train, params.seed, sinks)
            seconds = time.perf_counter() - started
            live.summary["epochs_run"] = epochs_run
        tracking.log_metrics(
            {
                "train_seconds": round(seconds, 1),
                "train_images_per_second": round(len(train) * epochs_run / seconds, 1),
            }
        )
        export(model, model_dir, model_params_digest(params))  # with its TFLite variants
        tracking.tag_model(read_identity(model_dir).digest)
        tracking.log_artifacts(live_dir, "training")
    log.info("trained in %.1f s; exported %s", seconds, model_dir)


if __name__ == "__main__":
    run_stage(main, "train")
