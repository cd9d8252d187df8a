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
import numpy as np
import tensorflow as tf
from dvclive import Live

from mnist_contracts import paths
from mnist_contracts.model import params_digest, read_identity
from mnist_pipeline import cluster as clusters
from mnist_pipeline import distributed, tracking, tune_trial
from mnist_pipeline.augmentation import random_shift
from mnist_pipeline.calibration import fit_temperature
from mnist_pipeline.cli import run_stage
from mnist_pipeline.dataset import NUM_CLASSES, Split, load_split
from mnist_pipeline.epoch_metrics import DvcLiveSink, EpochMetrics, EpochSink
from mnist_pipeline.models import build_model, calibrated, ensemble
from mnist_pipeline.params import Params, TrainParams, flatten, load_params
from mnist_pipeline.pruning import MagnitudePruning
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
    callbacks: list[keras.callbacks.Callback] = []
    if sinks and tune_trial.in_trial():  # a trial of `mnist tune`: report epochs, obey the pruner
        trial = tune_trial.TrialReporter()
        sinks = [*sinks, trial]

        def obey(epoch: int, logs: object) -> None:
            model.stop_training = model.stop_training or trial.stop

        callbacks.append(keras.callbacks.LambdaCallback(on_epoch_end=obey))
    callbacks.insert(0, EpochMetrics(sinks))  # first: the reporter has heard the epoch
    if params.prune.sparsity:
        total = steps * params.epochs
        begin, end = int(params.prune.begin * total), int(params.prune.end * total)
        every = min(100, max(1, (end - begin) // 10))  # tfmot's 100, or ten updates at least
        callbacks.append(MagnitudePruning(params.prune.sparsity, begin, end, every))
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


def cross_validate(
    train: Split, val: Split, params: TrainParams, seed: int
) -> dict[str, float | list[float]]:
    """Train on ``params.cv_folds`` stratified folds of ``train``; score each held-out fold.

    Each fold's model is trained as the final one is (same params and seed; the validation
    split monitors it) on the other folds, then scored on its held-out fold. Nothing is exported
    or registered: the folds measure the configuration, not a model.

    Args:
        train: The training split.
        val: The validation split (monitoring only, as for the final model).
        params: The ``train`` section.
        seed: The global seed (also shuffles the folds).

    Returns:
        :func:`mnist_pipeline.cross_validation.summarise` of the held-out accuracies.
    """
    # Only here: scikit-learn's model_selection costs seconds to import on every train otherwise.
    from mnist_pipeline.cross_validation import stratified_folds, summarise

    accuracies = []
    for fold in stratified_folds(train.y, params.cv_folds, seed):
        model, _ = fit(Split(train.x[fold.train], train.y[fold.train]), val, params, seed)
        held_out = Split(train.x[fold.held_out], train.y[fold.held_out])
        accuracies.append(val_accuracy(model, held_out))
        log.info("fold %d of %d: held-out accuracy %.4f", fold.number + 1, params.cv_folds,
                 accuracies[-1])  # fmt: skip
    return summarise(accuracies)


def val_probabilities(model: keras.Model, val: Split) -> np.ndarray:
    """The model's probabilities on the validation split, ``[N, 10]``."""
    return np.concatenate([
        model(val.x[i : i + 1000], training=False).numpy() for i in range(0, len(val), 1000)
    ])  # fmt: skip


def val_accuracy(model: keras.Model, val: Split) -> float:
    """The model's accuracy on the validation split (for an ensemble member's record)."""
    return round(float((val_probabilities(model, val).argmax(axis=1) == val.y).mean()), 6)


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
    if shaping.get("train.ensemble") == "1":
        del shaping["train.ensemble"]  # one member is the single model: the same digest as before
    shaping.pop("train.cv_folds", None)  # folds are scored, never exported: same model either way
    if shaping.get("train.prune.sparsity") == "0.0":  # pruning off: its window shapes nothing
        shaping = {k: v for k, v in shaping.items() if not k.startswith("train.prune.")}
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
        started, cpu_started = time.perf_counter(), time.process_time()
        # dvcyaml=False: dvc.yaml is written by hand and declares these plots itself.
        with Live(str(live_dir), dvcyaml=False, save_dvc_exp=False, report=None) as live:
            sinks: list[EpochSink] = [DvcLiveSink(live), tracking.MlflowSink()]
            model, epochs_run = fit(train, val, params.train, params.seed, sinks, strategy)
            members, total_epochs = [model], epochs_run
            # An ensemble's further members: the same params with the next seeds. Only the first
            # member's curves are plotted; each member's validation accuracy goes to MLflow.
            for k in range(1, params.train.ensemble):
                member, member_epochs = fit(train, val, params.train, params.seed + k)
                members.append(member)
                total_epochs += member_epochs
            seconds = time.perf_counter() - started
            cpu_seconds = time.process_time() - cpu_started  # every thread's, user + system
            live.summary["epochs_run"] = epochs_run
            steps = math.ceil(len(train) / params.train.batch_size) * total_epochs
            tracking.log_metrics(
                {
                    "train_seconds": round(seconds, 1),
                    "train_cpu_seconds": round(cpu_seconds, 1),
                    "train_images_per_second": round(len(train) * total_epochs / seconds, 1),
                    "train_step_ms": round(1000 * seconds / steps, 2),
                }
            )
            if len(members) > 1:
                accuracies = {f"member_{k}_val_accuracy": val_accuracy(m, val)
                              for k, m in enumerate(members)}  # fmt: skip
                tracking.log_metrics(accuracies)
                model = ensemble(members)
            # Calibrated on the validation split, after averaging: the export serves the result.
            temperature = fit_temperature(val_probabilities(model, val), val.y)
            live.summary["temperature"] = temperature
            tracking.log_metrics({"temperature": temperature})
            model = calibrated(model, temperature)
            export(model, model_dir, model_params_digest(params, workers))  # with TFLite variants
            tracking.tag_model(read_identity(model_dir).digest)
            # The folds after the export: TensorFlow numbers the functions it traces in order,
            # so training them first would change saved_model.pb (the weights would not change).
            if params.train.cv_folds:
                live.summary["cv"] = cross_validate(train, val, params.train, params.seed)
                tracking.log_metrics({"cv": live.summary["cv"]})
                if tune_trial.in_trial():
                    tune_trial.TrialReporter().record("cv_mean", float(live.summary["cv"]["mean"]))
        tracking.log_artifacts(live_dir, "training")
    log.info("trained in %.1f s; exported %s", seconds, model_dir)


if __name__ == "__main__":
    run_stage(main, "train")
