"""Training one model: fit a recipe's model, report every epoch, save a model directory.

`train_one(recipe("cnn"), out_dir)` trains, evaluates on the validation and test splits, and
saves `out_dir/model.keras` with its `metadata.json` and `history.json`. Choices (early
stopping, the saved epoch) look at the validation split only; the test figure is measured once
at the end. `digitrec.training.train` is the entry point that picks this, an ensemble or a
distributed run.
"""

import contextlib
import importlib.util
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np

from digitrec.artifact import save_model_dir
from digitrec.augment import augmenter
from digitrec.checkpoints import EpochCheckpoint, load_checkpoint, remove_checkpoints, start_point
from digitrec.contract import IMAGE_SHAPE, NUM_CLASSES
from digitrec.data import Dataset, load_dataset, scale
from digitrec.errors import ConfigError
from digitrec.files import atomic_write_text, reported_as
from digitrec.metrics import calibration, classification_metrics
from digitrec.models import build, float32_copy, precision_warning
from digitrec.recipes import TrainConfig
from digitrec.recognizer import Recognizer
from digitrec.synth import non_digits, restyled
from digitrec.temperature import apply_temperature, fit_temperature


@dataclass(frozen=True)
class TrainResult:
    """What a finished run gives back; the model itself is in `model_dir`."""

    model_dir: Path
    accuracy: float  # on the test set, measured once, after training
    val_accuracy: float
    train_seconds: float
    epochs: int
    model: str  # the architecture, or "ensemble"

    def to_dict(self) -> dict:
        return {
            "model_dir": str(self.model_dir),
            "model": self.model,
            "accuracy": self.accuracy,
            "val_accuracy": self.val_accuracy,
            "train_seconds": round(self.train_seconds, 2),
            "epochs": self.epochs,
        }

    def describe(self) -> str:
        """One line for a person."""
        return (
            f"test accuracy {self.accuracy:.4f} (validation {self.val_accuracy:.4f}) after {self.epochs} "
            f"epoch{'s' * (self.epochs != 1)}, {self.train_seconds:.1f} s of training; "
            f"saved to {self.model_dir}"
        )


def train_one(
    config: TrainConfig,
    out_dir: Path | str,
    *,
    data_dir: Path | str | None = None,
    resume: bool = False,
    log: Callable[[str], None] = print,
    progress: bool = False,
    tensorboard_dir: Path | str | None = None,
) -> TrainResult:
    """Train a model to `config`, checkpointing each epoch, and save it to `out_dir`."""
    # Keras writes TensorBoard logs with tf.summary, whatever the backend.
    if tensorboard_dir is not None and importlib.util.find_spec("tensorflow") is None:
        raise ConfigError("TensorBoard logs are written with TensorFlow, which is not installed here")
    out_dir = Path(out_dir)
    start_epoch, history = start_point(config, out_dir, resume)
    folders = [out_dir, Path(tensorboard_dir)] if tensorboard_dir else [out_dir]
    for folder in folders:  # where one cannot be made: now, not after an epoch
        with reported_as(folder):
            folder.mkdir(parents=True, exist_ok=True)
    if warning := precision_warning(config.precision):
        log(warning)
    _set_op_threads(config.op_threads)
    keras.utils.set_random_seed(config.seed)
    data = load_dataset(config.dataset, data_dir, progress=progress)
    x, y = training_arrays(config, data)
    trainer = load_checkpoint(out_dir) if start_epoch else compiled_trainer(config, _steps(config, len(x)))
    if start_epoch:
        log(f"resuming from the checkpoint after epoch {start_epoch} of {config.epochs}")
    trainer.fit(
        x,
        y,
        batch_size=config.batch_size,
        epochs=config.epochs,
        initial_epoch=start_epoch,
        # Keras's bar, per step where stdout is a terminal; first, so that it ends its line before
        # the epoch's own line is logged (Keras would add it last).
        callbacks=[
            *([keras.callbacks.ProgbarLogger()] if progress else []),
            *epoch_callbacks(config, data, out_dir, history, log, tensorboard_dir),
        ],
        verbose=1 if progress else 0,
    )
    return finish(config, trainer, data, out_dir, history)


def training_arrays(config: TrainConfig, data: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (scaled in the trainer, see `compiled_trainer`) and their target probabilities.

    The targets are one-hot labels or, with a teacher, labels mixed with the teacher's
    probabilities (knowledge distillation: Hinton, Vinyals and Dean 2015). The teacher reads the
    clean images once; augmented and restyled copies keep their image's targets. Synthetic
    non-digits, if asked, come last with a uniform target (outlier exposure: Hendrycks, Mazeika
    and Dietterich 2019), so that what is no digit is answered with doubt.
    """
    limit = config.train_limit or len(data.train_images)
    images, targets = data.train_images[:limit], _one_hot(data.train_labels[:limit])
    if config.teacher:
        taught = Recognizer.load(config.teacher).predict_proba(scale(images))
        targets = (1 - config.distill_weight) * targets + config.distill_weight * taught
    rng = np.random.default_rng(config.seed)
    if config.restyle:
        chosen = rng.random(len(images)) < config.restyle
        images = images.copy()
        images[chosen] = restyled(images[chosen], rng)
    if config.non_digits:
        marks = non_digits(round(config.non_digits * len(images)), rng)
        images = np.concatenate([images, marks])
        targets = np.concatenate([targets, np.full((len(marks), NUM_CLASSES), 1 / NUM_CLASSES, np.float32)])
    return images, targets


def epoch_callbacks(
    config: TrainConfig,
    data: Dataset,
    out_dir: Path,
    history: list[dict],
    log: Callable[[str], None],
    tensorboard_dir: Path | str | None = None,
) -> list[keras.callbacks.Callback]:
    """Validation and reporting, early stopping and TensorBoard if asked, then the checkpoint."""
    validation = (scale(data.val_images), data.val_labels)
    return [
        _EpochReport(config, history, log, validation, (scale(data.test_images), data.test_labels)),
        *_optional_callbacks(config, tensorboard_dir),
        EpochCheckpoint(config, out_dir, history),
    ]


def finish(
    config: TrainConfig, trainer: keras.Model, data: Dataset, out_dir: Path, history: list[dict]
) -> TrainResult:
    """Measure the trained model on validation and test once, save it, drop the checkpoints."""
    train_seconds = sum(epoch["seconds"] for epoch in history)
    model = float32_copy(_inner_model(trainer), config.model)
    measured = measure(model, data)
    figures = measured["metrics"]
    metadata = {
        "model": config.model,
        "dataset": config.dataset,
        "config": asdict(config),
        **measured,
        "train_seconds": round(train_seconds, 2),
        "epochs": len(history),
    }
    save_model_dir(model, out_dir, metadata)
    atomic_write_text(out_dir / "history.json", json.dumps(history, indent=1) + "\n")
    if config.curves:
        from digitrec.report import plot_history  # matplotlib: imported only when drawing

        plot_history(history, out_dir / "training_curves.png")
    remove_checkpoints(out_dir)
    accuracy = figures["test"]["accuracy"]
    return TrainResult(
        out_dir, accuracy, figures["validation"]["accuracy"], train_seconds, len(history), config.model
    )


def measure(model: keras.Model, data: Dataset) -> dict:
    """What a trained model's metadata says of it: its `temperature`, fitted on the validation
    split (`digitrec.temperature`), and its `metrics` on validation and on test."""
    recognizer = Recognizer.from_keras(model)
    validation = recognizer.predict_proba(scale(data.val_images))
    temperature = fit_temperature(validation, data.val_labels)
    test = apply_temperature(recognizer.predict_proba(scale(data.test_images)), temperature)
    return {
        "temperature": temperature,
        "metrics": {
            "validation": classification_metrics(data.val_labels, apply_temperature(validation, temperature)),
            "test": {
                **classification_metrics(data.test_labels, test),
                "ece": calibration(data.test_labels, test)["ece"],
            },
        },
    }


def _set_op_threads(threads: int) -> None:
    """Cap the threads of each TensorFlow op, where the process has not started them yet."""
    if not threads or keras.backend.backend() != "tensorflow":
        return
    import tensorflow as tf

    # Too late once TensorFlow has run an op in this process (a notebook, a test session).
    with contextlib.suppress(RuntimeError):
        tf.config.threading.set_intra_op_parallelism_threads(threads)


def _one_hot(labels: np.ndarray) -> np.ndarray:
    return np.eye(NUM_CLASSES, dtype=np.float32)[labels]


def _steps(config: TrainConfig, n: int) -> int:
    return -(-n // config.batch_size)


def compiled_trainer(config: TrainConfig, steps_per_epoch: int) -> keras.Model:
    """The model to fit: the architecture behind pixel scaling and, if asked, augmentation.

    The trainer takes the dataset's uint8 pixels and scales them itself: feeding Keras bytes
    rather than floats saves a pass over the training set and three quarters of the copying per
    batch. The saved model is the architecture alone, with the float input contract.
    """
    model = build(config.model, config.precision)
    if config.init:
        start = Recognizer.load(config.init).keras_model
        if [w.shape for w in start.weights] != [w.shape for w in model.weights]:
            raise ConfigError(f"--init {config.init} is not a {config.model} model: its weights do not fit")
        model.set_weights(start.get_weights())
    pipeline = [keras.Input(IMAGE_SHAPE, dtype="uint8"), keras.layers.Rescaling(1 / 255)]
    if config.augment:
        pipeline.append(
            augmenter(
                config.rotation_deg,
                config.shift,
                config.zoom,
                shear=config.shear,
                elastic_alpha=config.elastic_alpha,
                seed=config.seed,
            )
        )
    trainer = keras.Sequential([*pipeline, model], name="trainer")
    trainer.compile(
        optimizer=_optimizer(config, steps_per_epoch),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
        steps_per_execution=config.steps_per_execution,
    )
    return trainer


def _optional_callbacks(config: TrainConfig, tensorboard_dir: Path | str | None) -> list:
    """Early stopping and TensorBoard, where asked for; both read the validation figures."""
    callbacks: list[keras.callbacks.Callback] = []
    if config.patience:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_accuracy", mode="max", patience=config.patience, restore_best_weights=True
            )
        )
    if tensorboard_dir:
        callbacks.append(keras.callbacks.TensorBoard(str(tensorboard_dir)))
    return callbacks


def _optimizer(config: TrainConfig, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    lr: float | keras.optimizers.schedules.LearningRateSchedule = config.lr
    if config.schedule == "cosine":
        total = config.epochs * steps_per_epoch
        warmup = min(int(config.warmup_epochs * steps_per_epoch), total // 2)
        lr = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=0.0 if warmup else config.lr,
            decay_steps=total - warmup,
            warmup_target=config.lr if warmup else None,
            warmup_steps=warmup,
        )
    # Keras swaps the averaged weights in at the end of fit (Optimizer.finalize_variable_values).
    ema = {"use_ema": config.ema_momentum > 0, "ema_momentum": config.ema_momentum or 0.99}
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(lr, **ema)
    betas = {"beta_1": config.beta_1, "beta_2": config.beta_2}
    if config.optimizer == "adam":
        return keras.optimizers.Adam(lr, **betas, **ema)
    return keras.optimizers.AdamW(lr, weight_decay=config.weight_decay, **betas, **ema)


def _inner_model(trainer: keras.Model) -> keras.Model:
    """The architecture without the layers wrapped around it for training."""
    return trainer.layers[-1]


class _EpochReport(keras.callbacks.Callback):
    """Validation figures and one line per epoch; test accuracy every `test_every` epochs.

    Validation is measured here, by direct calls, rather than by `fit(validation_data=...)`,
    which rebuilds its evaluation pipeline every epoch (a second per run of the tutorial's
    model). The figures join `logs`, so callbacks after this one see `val_accuracy`.
    """

    def __init__(
        self, config: TrainConfig, history: list[dict], log: Callable[[str], None], val: tuple, test: tuple
    ):
        super().__init__()
        self.config, self.history, self.log, self.val, self.test = config, history, log, val, test

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        images, labels = self.val
        probs = Recognizer.from_keras(_inner_model(self.model)).predict_proba(images)
        logs["val_loss"] = float(-np.mean(np.log(np.maximum(probs[np.arange(len(labels)), labels], 1e-12))))
        logs["val_accuracy"] = float(np.mean(probs.argmax(1) == labels))
        record = {k: round(float(v), 6) for k, v in logs.items()}
        record.update(
            epoch=epoch + 1, lr=float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        )
        record["seconds"] = round(time.perf_counter() - self.started, 3)
        self.history.append(record)
        self.log(
            f"epoch {epoch + 1}/{self.config.epochs}  loss {record['loss']:.4f}"
            f"  accuracy {record['accuracy']:.4f}  val_accuracy {record['val_accuracy']:.4f}"
            f"  lr {record['lr']:.2e}  {record['seconds']:.1f} s"
        )
        if self.config.test_every and (epoch + 1) % self.config.test_every == 0:
            images, labels = self.test
            probs = Recognizer.from_keras(_inner_model(self.model)).predict_proba(images)
            self.log(f"epoch {epoch + 1}: test accuracy {float(np.mean(probs.argmax(1) == labels)):.4f}")
