"""Multi-worker training with TensorFlow's own ``tf.distribute.MultiWorkerMirroredStrategy``.

``train.distribution: multi_worker`` makes the train stage one worker of a cluster that
``TF_CONFIG`` describes (the variable TensorFlow itself reads). Worker 0 is the chief: it alone
writes the SavedModel, the DVCLive files and the MLflow run; the other workers train in lockstep
and write nothing.

Keras 3's ``model.fit`` does not run under this strategy (keras-team/keras#20585: it averages a
distributed batch across workers to build the model, and its metric reduction fails after that),
so :func:`fit_multi_worker` is TensorFlow's documented custom training loop around the same Keras
model, optimizer, loss, learning-rate schedule and callbacks as the single-machine path.

Determinism: with the same worker count, seeds and data, two runs give byte-identical weights
(every worker shuffles with the same seed and takes its own shard of that order; the ring
all-reduce adds the workers' gradients in a fixed order). A different worker count is a different
computation: each worker's share of a batch changes, and so do the last bits of the weights.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from mnist_pipeline.cluster import TF_CONFIG, Cluster

log = logging.getLogger(__name__)


def strategy_for(cluster: Cluster) -> tf.distribute.MultiWorkerMirroredStrategy:
    """Join the cluster (blocks until every worker is up) and return the strategy.

    Must run before any other TensorFlow op in the process, as TensorFlow requires.

    Args:
        cluster: This worker's cluster; written to ``TF_CONFIG`` for TensorFlow to read.

    Returns:
        The strategy, one replica per worker (CPU), ring all-reduce.
    """
    os.environ[TF_CONFIG] = cluster.tf_config()
    options = tf.distribute.experimental.CommunicationOptions(
        implementation=tf.distribute.experimental.CommunicationImplementation.RING
    )
    strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    log.info(
        "worker %d of %d joined %s", cluster.index, len(cluster.workers), ",".join(cluster.workers)
    )
    return strategy


def fit_multi_worker(
    strategy: tf.distribute.Strategy,
    model: keras.Model,
    per_example_loss: keras.losses.Loss,
    train_fn: Any,  # noqa: ANN401 - (tf.distribute.InputContext) -> tf.data.Dataset
    val: tf.data.Dataset,
    *,
    epochs: int,
    steps: int,
    global_batch: int,
    callbacks: Sequence[keras.callbacks.Callback],
) -> int:
    """Train ``model`` (built and compiled in ``strategy.scope()``) with a custom loop.

    Every worker runs the same steps: ``train_fn`` gives each its shard of every global batch;
    gradients are summed across workers by the optimizer's all-reduce. Each worker then scores
    the whole validation set with its (identical) copy of the weights, so every callback
    (early stopping, the trackers) sees the same numbers on every worker, with Keras' log keys.

    Args:
        strategy: The multi-worker strategy.
        model: The compiled model; its optimizer is used.
        per_example_loss: The training loss with ``reduction=None``.
        train_fn: ``InputContext -> dataset`` of this worker's per-replica batches.
        val: Batches of the validation split (not distributed).
        epochs: Most epochs to run.
        steps: Optimizer steps per epoch (the same on every worker).
        global_batch: Images per step over all workers.
        callbacks: Keras callbacks, driven as ``fit`` would.

    Returns:
        The epochs run (fewer than ``epochs`` when a callback stopped training).
    """
    optimizer = model.optimizer
    with strategy.scope():
        optimizer.build(model.trainable_variables)
    dataset = strategy.distribute_datasets_from_function(train_fn)

    def replica_step(images: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        with tf.GradientTape() as tape:
            probs = model(images, training=True)
            losses = per_example_loss(labels, probs)
            loss = tf.nn.compute_average_loss(losses, global_batch_size=global_batch)
            if model.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        hits = tf.equal(tf.argmax(probs, axis=1), tf.argmax(labels, axis=1))
        return tf.reduce_sum(losses), tf.reduce_sum(tf.cast(hits, tf.float32))

    @tf.function  # type: ignore[untyped-decorator]
    def train_step(iterator: Any) -> tuple[tf.Tensor, tf.Tensor]:  # noqa: ANN401
        loss_sum, hits = strategy.run(replica_step, args=next(iterator))
        total = tf.distribute.ReduceOp.SUM
        return strategy.reduce(total, loss_sum, axis=None), strategy.reduce(total, hits, axis=None)

    # Batch-norm moving statistics are updated by each worker from its own shard (Keras creates
    # them with aggregation "none"); averaging them after every epoch gives every worker the
    # same weights. The moving mean is linear in the batch means, so it equals the global one.
    statistics = [v for v in model.non_trainable_variables if v.dtype.startswith("float")]

    @tf.function  # type: ignore[untyped-decorator]
    def sync_statistics() -> None:
        def replica_mean() -> list[tf.Tensor]:
            context = tf.distribute.get_replica_context()
            return list(
                context.all_reduce(
                    tf.distribute.ReduceOp.MEAN, [tf.identity(v.value) for v in statistics]
                )
            )

        means = strategy.experimental_local_results(strategy.run(replica_mean))[0]
        for variable, mean in zip(statistics, means, strict=True):
            variable.assign(mean)  # cross-replica: every local copy

    @tf.function  # type: ignore[untyped-decorator]
    def val_step(images: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        probs = model(images, training=False)
        hits = tf.equal(tf.argmax(probs, axis=1), tf.argmax(labels, axis=1))
        return (
            tf.reduce_sum(per_example_loss(labels, probs)),
            tf.reduce_sum(tf.cast(hits, tf.float32)),
        )

    hooks = keras.callbacks.CallbackList(list(callbacks), model=model)
    model.stop_training = False
    hooks.on_train_begin()
    epoch = 0
    for epoch in range(epochs):
        hooks.on_epoch_begin(epoch)
        started = time.perf_counter()
        iterator = iter(dataset)
        sums = np.zeros(2)
        for _ in range(steps):
            sums += [float(v) for v in train_step(iterator)]
        seconds = time.perf_counter() - started
        if statistics:
            sync_statistics()
        val_sums, count = np.zeros(2), 0
        for images, labels in val:
            val_sums += [float(v) for v in val_step(images, labels)]
            count += int(images.shape[0])
        seen = steps * global_batch
        logs = {
            "loss": sums[0] / seen,
            "accuracy": sums[1] / seen,
            "val_loss": val_sums[0] / count,
            "val_accuracy": val_sums[1] / count,
        }
        log.info(
            "epoch %d: %s; %.1f ms/step", epoch + 1,
            ", ".join(f"{k} {v:.4f}" for k, v in logs.items()), 1000 * seconds / steps,
        )  # fmt: skip
        hooks.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    hooks.on_train_end()
    return epoch + 1


def unwrapped(model: keras.Model, build: Any) -> keras.Model:  # noqa: ANN401 - () -> Model
    """A copy of ``model`` outside any strategy, for exporting like a single-machine model.

    Args:
        model: The model trained under the strategy.
        build: Builds the same architecture (uncompiled).

    Returns:
        A fresh model holding the trained weights.
    """
    plain = build()
    plain.set_weights(model.get_weights())
    return plain
