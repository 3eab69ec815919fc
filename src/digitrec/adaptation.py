"""Learning a user's handwriting: fine-tune a model on the digits they corrected (issue 26).

    from digitrec.adaptation import adapt
    result = adapt("default", images, labels, "models/anna", profile="anna")
    Recognizer.load(result.model_dir)          # a model directory like any other

`images` are the user's digits as the model sees them, `(n, 28, 28)` uint8 0-255 or floats in
[0, 1], white ink on black (`digitrec.contract`); `labels` the digits they meant.

The recipe (`AdaptConfig`): a fifth of each digit written at least twice is held back. The model
is fine-tuned on the rest, warped afresh at every step, three quarters of every batch MNIST
training digits so that it forgets little else, at a small learning rate, with BatchNorm frozen
(the Keras transfer-learning guide: the statistics of such small, odd batches would unsettle
every layer after them). Every `check_every` steps the running average of the weights
(`average_decay`) reads the held-back examples; the step whose average reads them best (then
with the lowest loss) is kept, blended with the base where it loses more than
`max_validation_drop` of MNIST validation accuracy (`_guarded`). The test split is never read.

With few examples: where no digit was written twice, nothing can be held back; the model trains
for `blind_steps` (where checked runs usually stop), only the validation guard chooses, and the
held-back figures are None. Fewer than `MIN_EXAMPLES` digits are refused. The held-back "after"
figure is of the step chosen on those very examples, so it flatters; `benchmarks/adapt.py`
measures on digits the adaptation never saw.
"""

import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from digitrec.artifact import resolve_model_path, save_model_dir
from digitrec.contract import IMAGE_SHAPE, NUM_CLASSES, check_images
from digitrec.data import Dataset, load_dataset, scale
from digitrec.errors import ConfigError, InputError
from digitrec.metrics import classification_metrics
from digitrec.recognizer import Recognizer
from digitrec.temperature import apply_temperature, fit_temperature

MIN_EXAMPLES = 10  # fewer say too little of a hand to move a model trained on 55,000 digits
# What the base's metadata says that no longer holds of the adapted model; save_model_dir and
# adapt write their own.
STALE_METADATA = ("metrics", "temperature", "weights_sha256", "parameters", "train_seconds", "epochs")


@dataclass(frozen=True)
class AdaptConfig:
    """The recipe. Defaults chosen on simulated writers' training-side digits and the validation
    split (`benchmarks/adapt.py`), never on the test split."""

    max_steps: int = 300  # 20-50 s on 2 shared CPU cores; 400 read simulated writers no better
    check_every: int = 25  # steps between readings of the held-back examples
    patience: int = 4  # checks without a better reading before stopping
    batch_size: int = 64
    # Of each batch: the user's examples (with replacement); the rest MNIST. At 0.5 the model
    # forgot enough MNIST that the guard blended one simulated writer back to the base (0.80 on
    # its validation-side digits); at 0.25, 0.95, the other four within 0.005 of 0.5's figures.
    user_share: float = 0.25
    lr: float = 3e-4  # Adam; 1e-3 forgot more MNIST and, blended back, read writers worse
    label_smoothing: float = 0.05  # the base's own
    # Checked and kept: the weights' running average, this much of it carried at each step
    # (Polyak averaging; it starts from the base's). On seven simulated writers' validation-side
    # digits, against the weights as trained: 23 validation digits newly misread (30), 126 of
    # 15,000 warped ones (153), the writers read as well (`benchmarks/adapt.py --development`).
    average_decay: float = 0.97
    hold_back: float = 0.2  # of each digit written at least twice; at least one, never all
    blind_steps: int = 200  # with nothing held back: the median step chosen with 10 per digit
    max_validation_drop: float = 0.001  # MNIST validation accuracy the adapted model may lose
    rotation_deg: float = 10.0  # the warps of each example, drawn afresh at every step
    shift: float = 0.1
    zoom: float = 0.1
    shear: float = 0.15
    stroke: float = 0.5


@dataclass(frozen=True)
class AdaptResult:
    """What an adaptation gives back; the model itself is in `model_dir`."""

    model_dir: Path
    examples: int  # all the user's examples
    held_back: int  # of them, kept out of training to choose the step and to measure
    steps: int  # training steps of the weights kept; 0: the base's were kept
    blend: float  # their share in the saved weights, the base's the rest (see `_guarded`)
    held_back_accuracy_before: float | None  # None where nothing could be held back
    held_back_accuracy_after: float | None
    validation_accuracy_before: float
    validation_accuracy_after: float
    seconds: float

    def to_dict(self) -> dict:
        return {**asdict(self), "model_dir": str(self.model_dir), "seconds": round(self.seconds, 2)}

    def describe(self) -> str:
        """One line for a person."""
        if self.held_back_accuracy_before is None:
            held = "none held back"
        else:
            held = f"held back {self.held_back}: {self.held_back_accuracy_before:.3f}"
            held += f" -> {self.held_back_accuracy_after:.3f}"
        return (
            f"adapted on {self.examples - self.held_back} examples ({held}; MNIST validation "
            f"{self.validation_accuracy_before:.4f} -> {self.validation_accuracy_after:.4f}) after "
            f"{self.steps} steps, blended {self.blend:.2f}, {self.seconds:.1f} s; saved to {self.model_dir}"
        )


def adapt(
    base: str | Path,
    images: np.ndarray,
    labels: np.ndarray,
    out_dir: str | Path,
    *,
    profile: str | None = None,
    seed: int = 0,
    config: AdaptConfig = AdaptConfig(),
    data_dir: str | Path | None = None,
    log: Callable[[str], None] = print,
) -> AdaptResult:
    """Fine-tune the Keras model `base` (a bundled name or a model directory) on a user's
    examples and save it to `out_dir`. `config` is the recipe: a short `max_steps` for tests."""
    started = time.perf_counter()
    images, labels = checked_examples(images, labels)
    out_dir = Path(out_dir)
    _check_config(config)
    if out_dir.resolve() == resolve_model_path(base).resolve():
        raise ConfigError(f"{out_dir} is the base model's own directory; pass another output directory")
    trained, held = held_back_split(labels, config.hold_back, np.random.default_rng(seed))
    log(f"{len(labels)} examples: training on {len(trained)}, holding back {len(held)}")
    import keras

    # Before loading: the model's Dropout layers seed their generators as they are built.
    keras.utils.set_random_seed(seed)
    recognizer = Recognizer.load(base)
    model = recognizer.keras_model
    data = load_dataset("mnist", data_dir, progress=False)
    held_set = (images[held], labels[held])
    validation = (scale(data.val_images), data.val_labels)
    before, base_weights = _Reading(model, held_set, validation), model.get_weights()
    checkpoints = _fine_tune(model, (images[trained], labels[trained]), held_set, data, config, seed, log)
    after = _guarded(
        model, base_weights, _best(checkpoints, held_set), held_set, validation, before, config, log
    )
    result = AdaptResult(
        out_dir,
        len(labels),
        len(held),
        after.step,
        after.blend,
        before.held_accuracy,
        after.held_accuracy,
        before.val_accuracy,
        after.val_accuracy,
        seconds=0.0,
    )
    metadata = _metadata(recognizer.metadata, str(base), profile, result, after.val_probs, data.val_labels)
    save_model_dir(model, out_dir, {**metadata, "adapt_config": {**asdict(config), "seed": seed}})
    return replace(result, seconds=time.perf_counter() - started)


def _metadata(
    inherited: dict,
    base: str,
    profile: str | None,
    result: AdaptResult,
    val_probs: np.ndarray,
    val_labels: np.ndarray,
) -> dict:
    """What the base's metadata says that still holds, the temperature refitted on validation
    (`digitrec.temperature`), the validation figures, and how the adaptation went."""
    temperature = fit_temperature(val_probs, val_labels)
    calibrated = apply_temperature(val_probs, temperature)
    return {
        **{k: v for k, v in inherited.items() if k not in STALE_METADATA},
        "temperature": temperature,
        "metrics": {"validation": classification_metrics(val_labels, calibrated)},
        "adapted_from": base,
        "profile": profile,
        "examples": result.examples,
        "held_back": result.held_back,
        "held_back_accuracy_before": result.held_back_accuracy_before,
        "held_back_accuracy_after": result.held_back_accuracy_after,
        "validation_accuracy_before": result.validation_accuracy_before,
        "validation_accuracy_after": result.validation_accuracy_after,
        "adapt_steps": result.steps,
        "adapt_blend": result.blend,
    }


def checked_examples(images: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """The examples as float32 `(n, 28, 28)` in [0, 1] and int64 digits, or an `InputError`."""
    array = np.asarray(images)
    if array.ndim != 3 or array.shape[1:] != IMAGE_SHAPE:
        raise InputError(
            f"expected images shaped (n, 28, 28), got {array.shape}; pass photos through "
            "digitrec.preprocess first (Recognizer.prepare(image).whole.image)"
        )
    if array.dtype == np.uint8:
        array = scale(array)
    elif not np.issubdtype(array.dtype, np.floating):
        raise InputError(f"expected uint8 pixels 0-255 or floats in [0, 1], got {array.dtype} pixels")
    digits = np.asarray(labels)
    if digits.ndim != 1 or len(digits) != len(array):
        raise InputError(f"expected one label per image, {len(array)}, got labels shaped {digits.shape}")
    if not np.issubdtype(digits.dtype, np.integer):
        raise InputError(f"expected labels that are integer digits 0-9, got {digits.dtype} labels")
    if digits.size and not 0 <= digits.min() <= digits.max() <= 9:
        raise InputError(
            f"expected labels that are digits 0-9, got labels from {digits.min()} to {digits.max()}"
        )
    if len(array) < MIN_EXAMPLES:
        raise InputError(
            f"expected at least {MIN_EXAMPLES} examples to adapt to, got {len(array)}; correct more digits"
        )
    return check_images(array), digits.astype(np.int64)


def _check_config(config: AdaptConfig) -> None:
    if not (0 <= config.hold_back < 1 and 0 < config.user_share < 1):
        raise ConfigError(
            f"hold_back must be in [0, 1) and user_share in (0, 1), "
            f"got {config.hold_back} and {config.user_share}"
        )
    if min(config.max_steps, config.check_every, config.blind_steps, config.batch_size) < 1:
        raise ConfigError("max_steps, check_every, blind_steps and batch_size must be at least 1")


def held_back_split(
    labels: np.ndarray, share: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Indices to train on and to hold back: `share` of each digit written at least twice
    (rounded, at least one, never all of them); a digit written once is all trained on."""
    trained, held = [], []
    for digit in np.unique(labels):
        mine = rng.permutation(np.flatnonzero(labels == digit))
        count = 0 if len(mine) < 2 or share == 0 else min(len(mine) - 1, max(1, round(share * len(mine))))
        held.append(mine[:count])
        trained.append(mine[count:])
    return np.sort(np.concatenate(trained)), np.sort(np.concatenate(held))


@dataclass(frozen=True)
class _Checkpoint:
    step: int
    score: tuple[float, float]  # held-back accuracy, then minus its loss: larger is better
    weights: list[np.ndarray]


def _fine_tune(
    model: Any,
    user: tuple[np.ndarray, np.ndarray],
    held: tuple[np.ndarray, np.ndarray],
    data: Dataset,
    config: AdaptConfig,
    seed: int,
    log: Callable[[str], None],
) -> list[_Checkpoint]:
    """Train `model` in place; its weights at every check. With examples held back, it stops
    after `patience` checks that read them no better than the best check before them."""
    trainer = _trainer(model, config, seed)
    steps = config.max_steps if len(held[1]) else config.blind_steps
    checkpoints: list[_Checkpoint] = []
    best, stale = (-1.0, -np.inf), 0
    average, decay = model.get_weights(), np.float32(config.average_decay)
    for step, (x, y) in enumerate(_batches(user, data, config, steps, np.random.default_rng(seed)), 1):
        trainer.train_on_batch(x, y)
        trained = model.get_weights()
        average = [decay * a + (1 - decay) * w for a, w in zip(average, trained, strict=True)]
        if step % config.check_every and step != steps:
            continue
        model.set_weights(average)
        checkpoints.append(_Checkpoint(step, _score(model, held), average))
        model.set_weights(trained)
        log(f"step {step}: held back {checkpoints[-1].score[0]:.3f}, loss {-checkpoints[-1].score[1]:.4f}")
        best, stale = (checkpoints[-1].score, 0) if checkpoints[-1].score > best else (best, stale + 1)
        if len(held[1]) and stale >= config.patience:
            break
    _set_batch_norm_trainable(model, True)  # as it was, for whatever fine-tunes the saved model next
    return checkpoints


def _best(checkpoints: list[_Checkpoint], held: tuple) -> _Checkpoint:
    """The step to keep: the one that reads the held-back examples best (then with the lowest
    loss); the last where nothing is held back. Never the base on their account: a few
    examples read right say little (a simulated writer the base read at 0.90 had all 40 of its
    held-back digits read right), and the user asked for their hand to be learnt."""
    return max(checkpoints, key=lambda c: c.score) if len(held[1]) else checkpoints[-1]


def _trainer(model: Any, config: AdaptConfig, seed: int) -> Any:
    import keras

    from digitrec.augment import augmenter

    _set_batch_norm_trainable(model, False)
    warp = augmenter(config.rotation_deg, config.shift, config.zoom, config.stroke, config.shear, seed=seed)
    trainer = keras.Sequential([keras.Input(IMAGE_SHAPE), warp, model], name="adapter")
    trainer.compile(
        optimizer=keras.optimizers.Adam(config.lr),
        loss=keras.losses.CategoricalCrossentropy(),
    )
    return trainer


def _set_batch_norm_trainable(model: Any, trainable: bool) -> None:
    """Freeze or thaw every BatchNormalization layer, in nested models too; in Keras 3 a frozen
    one also normalises with its stored statistics while training."""
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = trainable
        elif isinstance(layer, keras.Model):
            _set_batch_norm_trainable(layer, trainable)


def _batches(
    user: tuple[np.ndarray, np.ndarray],
    data: Dataset,
    config: AdaptConfig,
    steps: int,
    rng: np.random.Generator,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """`steps` batches of the user's examples, drawn with replacement, and MNIST training digits,
    each at most once while they last; targets one-hot, smoothed as the base's were."""
    mine = max(1, round(config.batch_size * config.user_share))
    others = config.batch_size - mine
    order = rng.permutation(len(data.train_labels))
    targets = (
        np.eye(NUM_CLASSES, dtype=np.float32) * (1 - config.label_smoothing)
        + config.label_smoothing / NUM_CLASSES
    )
    for step in range(steps):
        chosen = rng.integers(len(user[1]), size=mine)
        drawn = order[np.arange(step * others, (step + 1) * others) % len(order)]
        x = np.concatenate([user[0][chosen], scale(data.train_images[drawn])])
        yield x, targets[np.concatenate([user[1][chosen], data.train_labels[drawn]])]


def _score(model: Any, held: tuple[np.ndarray, np.ndarray]) -> tuple[float, float]:
    images, labels = held
    if not len(labels):
        return 0.0, 0.0
    probs = Recognizer.from_keras(model).predict_proba(images)
    loss = -float(np.mean(np.log(np.maximum(probs[np.arange(len(labels)), labels], 1e-12))))
    return float(np.mean(probs.argmax(1) == labels)), -loss


class _Reading:
    """A model's figures as it is now: held-back accuracy (None: none held back), validation
    probabilities and accuracy; and the step and blend of the weights it was given."""

    def __init__(self, model: Any, held: tuple, validation: tuple, step: int = 0, blend: float = 0.0):
        self.step, self.blend = step, blend
        self.held_accuracy = _score(model, held)[0] if len(held[1]) else None
        self.val_probs = Recognizer.from_keras(model).predict_proba(validation[0])
        self.val_accuracy = float(np.mean(self.val_probs.argmax(1) == validation[1]))


def _guarded(
    model: Any,
    base: list[np.ndarray],
    best: _Checkpoint,
    held: tuple,
    validation: tuple,
    before: _Reading,
    config: AdaptConfig,
    log: Callable[[str], None],
) -> _Reading:
    """`best`'s weights in `model` where they keep MNIST validation accuracy within
    `max_validation_drop` of the base's; else the largest blend of them with the base's that
    does, found by halving (1, then 1/2, then 3/4 or 1/4: three passes over validation at most);
    else the base's. Blending the weights of a fine-tuned model
    with those it started from keeps most of what it learnt and most of what it knew (WiSE-FT:
    Wortsman et al. 2022, "Robust fine-tuning of zero-shot models")."""
    kept, kept_weights = before, base
    low, high, blend = 0.0, 1.0, 1.0
    for _ in range(3):
        weights = [b + np.float32(blend) * (w - b) for b, w in zip(base, best.weights, strict=True)]
        model.set_weights(weights)
        reading = _Reading(model, held, validation, best.step, blend)
        # A tolerance of far less than one image: accuracies are counts over 5,000.
        passed = reading.val_accuracy >= before.val_accuracy - config.max_validation_drop - 1e-9
        log(
            f"step {best.step} blended {blend:.2f}: "
            f"validation {reading.val_accuracy:.4f} (base {before.val_accuracy:.4f})"
        )
        if passed:
            kept, kept_weights, low = reading, weights, blend
        else:
            high = blend
        if passed and blend == 1:
            break
        blend = (low + high) / 2
    model.set_weights(kept_weights)
    return kept
