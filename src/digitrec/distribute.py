"""Training on TensorFlow's distribution engine: several GPUs (mirrored) or machines (multi-worker).

Keras 3's `model.fit` fails under `MultiWorkerMirroredStrategy` (keras-team/keras#20585: a
`reduce` of the first batch and of scalar metrics), so the distributed path is a custom loop
with the same Keras model, optimizer, schedule, augmentation, loss, checkpoints and reports as
`digitrec.fitting`: `strategy.run` on each replica's share of a global batch, the loss averaged
with `tf.nn.compute_average_loss` over the *global* batch, gradients all-reduced by the
strategy. So the recipe's `batch_size` and `lr` are global: with N replicas each sees
batch_size / N images a step and the learning rate needs no rescaling.

The cluster comes from `TF_CONFIG` (one per host: `{"cluster": {"worker": ["host1:port",
"host2:port"]}, "task": {"type": "worker", "index": 0}}`). Every worker reads the whole
dataset and keeps every N-th example (auto-shard policy DATA, set explicitly, since the data is
in memory rather than in files). Worker 0 is the chief: it writes checkpoints and the model;
the others write theirs to a temporary folder and delete it. A worker that dies makes the
others fail within `timeout_s` with a clear error instead of hanging.
"""

import functools
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import keras
import numpy as np

from digitrec.checkpoints import load_checkpoint, start_point
from digitrec.data import load_dataset
from digitrec.errors import ConfigError, DigitrecError
from digitrec.fitting import (
    TrainResult,
    compiled_trainer,
    epoch_callbacks,
    finish,
    train_one,
    training_arrays,
)
from digitrec.models import precision_warning
from digitrec.recipes import STRATEGIES, TrainConfig

if TYPE_CHECKING:
    import tensorflow as tf


def use_data_parallel() -> int:
    """On the JAX backend: split every batch over all local devices (`keras.distribution`).

    The ordinary `train` path then runs data-parallel, with no custom loop: Keras shards the
    inputs and replicates the weights. Returns the number of devices.
    """
    devices = keras.distribution.list_devices()
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
    return len(devices)


def make_strategy(name: str, timeout_s: float = TrainConfig.worker_timeout_s) -> "tf.distribute.Strategy":
    """The tf.distribute strategy named on the command line."""
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi-worker":
        if "TF_CONFIG" not in os.environ:
            raise ConfigError(
                "--strategy multi-worker needs TF_CONFIG: the cluster's workers and this one's index"
            )
        options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=timeout_s)
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    raise ConfigError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")


def train_with_strategy(
    config: TrainConfig, out_dir: Path | str, *, tensorboard_dir: Path | str | None = None, **options
) -> TrainResult:
    """Train on `config.strategy`, "mirrored" or "multi-worker", the way the backend does it.

    On JAX, "mirrored" is Keras's own data parallelism over the local devices and the ordinary
    `train_one` runs, TensorBoard logs and all; otherwise it is tf.distribute's loop,
    `train_distributed`, which writes none. `options`: `data_dir`, `resume`, `log`, `progress`.
    """
    log = options.get("log", print)
    if config.strategy == "mirrored" and keras.backend.backend() == "jax":
        log(f"data-parallel over {use_data_parallel()} JAX devices")
        return train_one(config, out_dir, tensorboard_dir=tensorboard_dir, **options)
    if tensorboard_dir is not None:
        raise ConfigError("tf.distribute's training loop writes no TensorBoard logs; drop --tensorboard")
    options.pop("progress", None)  # the loop reports one line an epoch
    return train_distributed(
        config, out_dir, make_strategy(config.strategy, config.worker_timeout_s), **options
    )


def train_distributed(
    config: TrainConfig,
    out_dir: Path | str,
    strategy,
    *,
    data_dir: Path | str | None = None,
    resume: bool = False,
    log: Callable[[str], None] = print,
) -> TrainResult:
    """Train under `strategy` with a custom loop; the chief saves to `out_dir` as `train_one` does."""
    import tensorflow as tf

    chief = _is_chief(strategy)
    target = Path(out_dir) if chief else Path(tempfile.mkdtemp(prefix="digitrec-worker-"))
    try:
        start_epoch, history = start_point(config, target, resume and chief)
        if chief and (warning := precision_warning(config.precision)):
            log(warning)
        keras.utils.set_random_seed(config.seed)
        data = load_dataset(config.dataset, data_dir, progress=False)
        images, labels = training_arrays(config, data)
        steps = len(images) // config.batch_size
        if steps == 0:
            raise ConfigError(f"{len(images)} training images make no global batch of {config.batch_size}")
        with strategy.scope():
            trainer = load_checkpoint(target) if start_epoch else compiled_trainer(config, steps)
            trainer.optimizer.build(trainer.trainable_variables)  # its slots, mirrored, before any step
        step = _train_step(strategy, trainer, config)
        dataset = strategy.experimental_distribute_dataset(_dataset(images, labels, config))
        callbacks = epoch_callbacks(config, data, target, history, log if chief else _silent)
        if start_epoch:
            log(f"resuming from the checkpoint after epoch {start_epoch} of {config.epochs}")
        one_epoch = functools.partial(_run_epoch, step, dataset, steps)
        _run_epochs(trainer, callbacks, one_epoch, range(start_epoch, config.epochs))
        return finish(config, trainer, data, target, history)
    except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.AbortedError) as exc:
        raise DigitrecError(f"a worker of the cluster stopped answering: {str(exc).splitlines()[0]}") from exc
    finally:
        if not chief:
            shutil.rmtree(target, ignore_errors=True)


def _run_epochs(trainer, callbacks: list, run_epoch: Callable[[], dict], epochs: range) -> None:
    """What `fit` does around its epochs: the callbacks (checkpoints, validation, early stopping).

    Through Keras's own `CallbackList`, so each callback hears the whole protocol: early
    stopping, for one, restores the best epoch's weights only in `on_train_end`.
    """
    hooks = keras.callbacks.CallbackList(callbacks, model=trainer)
    hooks.on_train_begin()
    for epoch in epochs:
        hooks.on_epoch_begin(epoch)
        logs = run_epoch()
        hooks.on_epoch_end(epoch, logs)
        if trainer.stop_training:
            break
    hooks.on_train_end()


def _silent(line: str) -> None:
    pass


def _is_chief(strategy) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return not has_chief and resolver.task_type == "worker" and resolver.task_id == 0


def _dataset(images: np.ndarray, labels: np.ndarray, config: TrainConfig):
    """Shuffled global batches; each worker keeps its share of the examples (policy DATA)."""
    import tensorflow as tf

    dataset = (
        tf.data.Dataset.from_tensor_slices((images, labels))
        .shuffle(len(images), seed=config.seed, reshuffle_each_iteration=True)
        .batch(config.batch_size, drop_remainder=True)  # every replica steps in lockstep
        .repeat()
        .prefetch(tf.data.AUTOTUNE)
    )
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def _train_step(strategy, trainer: keras.Model, config: TrainConfig):
    import tensorflow as tf

    global_batch = config.batch_size
    # The same loss as `fit` uses, per example, so the average is over the global batch.
    loss_fn = keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing, reduction=None)

    def replica_step(images, labels):
        with tf.GradientTape() as tape:
            probs = trainer(images, training=True)
            loss = tf.nn.compute_average_loss(loss_fn(labels, probs), global_batch_size=global_batch)
        grads = tape.gradient(loss, trainer.trainable_variables)
        trainer.optimizer.apply_gradients(zip(grads, trainer.trainable_variables, strict=True))
        right = tf.reduce_sum(tf.cast(tf.argmax(probs, 1) == tf.argmax(labels, 1), tf.float32))
        return loss, right

    @tf.function
    def step(iterator):
        loss, right = strategy.run(replica_step, args=next(iterator))
        return (
            strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None),
            strategy.reduce(tf.distribute.ReduceOp.SUM, right, axis=None) / global_batch,
        )

    return step


def _run_epoch(step, dataset, steps: int) -> dict:
    iterator = iter(dataset)
    losses, accuracies = [], []
    for _ in range(steps):
        loss, accuracy = step(iterator)
        losses.append(float(loss))
        accuracies.append(float(accuracy))
    return {"loss": float(np.mean(losses)), "accuracy": float(np.mean(accuracies))}
