"""Stage ``train``: fit the configured model, seeded and deterministic, and export a SavedModel."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path

import keras
import tensorflow as tf
from dvclive import Live

from mnist_contracts import paths
from mnist_contracts.model import params_digest, read_identity
from mnist_pipeline import cluster as clusters
from mnist_pipeline import distributed, tracking
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


def make_loss(params: TrainParams, reduction: str | None = "sum_over_batch_size") -> keras.Loss:
    """Categorical cross-entropy with the configured label smoothing.

    Args:
        params: Uses ``label_smoothing``.
        reduction: Keras' reduction; ``None`` gives one loss per image (the multi-worker loop).

    Returns:
        The loss.
    """
    return keras.losses.CategoricalCrossentropy(
        label_smoothing=params.label_smoothing, reduction=reduction
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
    model.compile(optimizer=optimizer, loss=make_loss(params), metrics=["accuracy"])


def make_dataset(
    split: Split,
    batch_size: int,
    *,
    seed: int,
    shuffle: bool,
    max_shift: int = 0,
    shard: tf.distribute.InputContext | None = None,
) -> tf.data.Dataset:
    """Batches of ``(uint8 images, one-hot labels)``, shuffled and augmented for training.

    Args:
        split: Images and labels.
        batch_size: Batch size (over all workers when ``shard`` is given).
        seed: Seed for the shuffle order and the augmentation.
        shuffle: Reshuffle every epoch (training only).
        max_shift: Random shift in pixels (0 = none).
        shard: A worker's input context: every worker shuffles with the same seed, keeps the
            whole global batches of that order and takes its own shard of them, in batches of
            its share of ``batch_size``.

    Returns:
        The dataset.
    """
    ds = tf.data.Dataset.from_tensor_slices((split.x, split.y))
    if shuffle:
        ds = ds.shuffle(len(split), seed=seed, reshuffle_each_iteration=True)
    if shard is None:
        ds = ds.batch(batch_size)
    else:
        ds = ds.take(len(split) // batch_size * batch_size)
        ds = ds.shard(shard.num_input_pipelines, shard.input_pipeline_id)
        ds = ds.batch(shard.get_per_replica_batch_size(batch_size), drop_remainder=True)

    def prepare(images: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return random_shift(images, max_shift, seed), tf.one_hot(labels, NUM_CLASSES)

    return ds.map(prepare).prefetch(2)


def fit(
    train: Split,
    val: Split,
    params: TrainParams,
    seed: int,
    sinks: Sequence[EpochSink] = (),
    strategy: tf.distribute.Strategy | None = None,
) -> tuple[keras.Model, int]:
    """Build, compile and fit the model; report every epoch to ``sinks``.

    Args:
        train: Training split.
        val: Validation split (monitored for early stopping).
        params: The ``train`` section.
        seed: The global seed.
        sinks: Trackers that receive each epoch's metrics.
        strategy: A multi-worker strategy (:mod:`mnist_pipeline.distributed`); ``None`` trains
            on this machine with ``model.fit``.

    Returns:
        The trained model (best weights when early stopping is on) and the epochs it ran.
    """
    make_deterministic(seed)
    if strategy is None:
        steps = math.ceil(len(train) / params.batch_size)
    else:
        steps = clusters.steps_per_epoch(
            len(train), params.batch_size, strategy.num_replicas_in_sync
        )
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        model = build_model(params)
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
    val_ds = make_dataset(val, 1000, seed=seed, shuffle=False)
    if strategy is not None:
        epochs_run = distributed.fit_multi_worker(
            strategy,
            model,
            make_loss(params, reduction=None),
            lambda context: make_dataset(
                train,
                params.batch_size,
                seed=seed,
                shuffle=True,
                max_shift=params.augment.max_shift,
                shard=context,
            ),
            val_ds,
            epochs=params.epochs,
            steps=steps,
            global_batch=params.batch_size,
            callbacks=callbacks,
        )
        return distributed.unwrapped(model, lambda: build_model(params)), epochs_run
    train_ds = make_dataset(
        train,
        params.batch_size,
        seed=seed,
        shuffle=True,
        max_shift=params.augment.max_shift,
    )
    history = model.fit(
        train_ds,
        validation_data=val_ds,
        epochs=params.epochs,
        callbacks=callbacks,
        shuffle=False,  # the dataset reshuffles itself, seeded
        verbose=2,
    )
    return model, len(history.epoch)


def model_params_digest(params: Params, workers: int | None = None) -> str:
    """The digest of exactly the params this stage declares that shape the model.

    ``seed`` and ``train``: the data comes in through ``data/prepared`` (hashed by DVC), and
    ``tracking`` says where runs are logged, not what is learnt. A multi-worker model also
    depends on the number of workers, which ``TF_CONFIG`` gives, not ``params.yaml``.

    Args:
        params: All params.
        workers: Workers of a multi-worker run (``None`` on one machine).

    Returns:
        The params digest written into the export's identity.
    """
    flat = flatten(params)
    shaping = {k: v for k, v in flat.items() if k == "seed" or k.startswith("train.")}
    if workers is not None:
        shaping["train.workers"] = str(workers)
    return params_digest(shaping)


def with_distribution(params: Params, distribution: str | None) -> Params:
    """``params`` with ``train.distribution`` replaced (``None`` keeps the file's value).

    Args:
        params: All params.
        distribution: ``single`` or ``multi_worker``.

    Returns:
        The params to train with.
    """
    if distribution is None:
        return params
    train = TrainParams.model_validate({**params.train.model_dump(), "distribution": distribution})
    return params.model_copy(update={"train": train})


def main(root: Path = Path(), distribution: str | None = None) -> None:
    """Train on ``data/prepared`` and export ``models/mnist``; curves go to ``reports/train``.

    Opens the pipeline's MLflow run and tags it with the exported model's digest, by which
    evaluate and register find it. What varies from run to run (wall time, images/s) goes to
    MLflow only: every file this stage writes is the same for the same params and data.

    With ``train.distribution: multi_worker`` this process is one worker of the cluster that
    ``TF_CONFIG`` names: worker 0 (the chief) does all of the above; the others train in
    lockstep and write nothing.

    Args:
        root: The repository root; paths come from :mod:`mnist_contracts.paths`.
        distribution: Overrides ``train.distribution`` (``mnist train-distributed`` passes
            ``multi_worker``).
    """
    params = with_distribution(load_params(root / paths.PARAMS_FILE), distribution)
    cluster, strategy = None, None
    if params.train.distribution == "multi_worker":
        cluster = clusters.parse_tf_config(os.environ.get(clusters.TF_CONFIG))
        strategy = distributed.strategy_for(cluster)  # before any other TensorFlow op
    data_dir, model_dir = root / paths.PREPARED_DIR, root / paths.MODEL_DIR
    live_dir = root / paths.TRAIN_LIVE_DIR
    train, val = load_split("train", data_dir), load_split("val", data_dir)
    if cluster is not None and not cluster.chief:
        fit(train, val, params.train, params.seed, strategy=strategy)
        log.info("worker %d done; the chief (worker 0) writes the model", cluster.index)
        return
    workers = None if cluster is None else len(cluster.workers)
    run_params = flatten(params) | ({} if workers is None else {"train.workers": str(workers)})
    with tracking.pipeline_run(params.tracking.experiment, run_params):
        started = time.perf_counter()
        # dvcyaml=False: dvc.yaml is written by hand and declares these plots itself.
        with Live(str(live_dir), dvcyaml=False, save_dvc_exp=False, report=None) as live:
            sinks: list[EpochSink] = [DvcLiveSink(live), tracking.MlflowSink()]
            model, epochs_run = fit(train, val, params.train, params.seed, sinks, strategy)
            seconds = time.perf_counter() - started
            live.summary["epochs_run"] = epochs_run
        steps = math.ceil(len(train) / params.train.batch_size) * epochs_run
        tracking.log_metrics(
            {
                "train_seconds": round(seconds, 1),
                "train_images_per_second": round(len(train) * epochs_run / seconds, 1),
                "train_step_ms": round(1000 * seconds / steps, 2),
            }
        )
        export(model, model_dir, model_params_digest(params, workers))  # with its TFLite variants
        tracking.tag_model(read_identity(model_dir).digest)
        tracking.log_artifacts(live_dir, "training")
    log.info("trained in %.1f s; exported %s", seconds, model_dir)


if __name__ == "__main__":
    run_stage(main, "train")
