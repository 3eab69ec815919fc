"""Learning a user's handwriting: fine-tune a model on the digits they corrected (issue 26).

    from digitrec.adaptation import adapt
    result = adapt("default", images, labels, "models/anna", profile="anna")
    Recognizer.load(result.model_dir)          # a model directory like any other

`images` are the user's digits as the model sees them, `(n, 28, 28)` uint8 0-255 or floats in
[0, 1], white ink on black (`digitrec.contract`); `labels` the digits they meant. A fifth of the
examples of each digit written at least twice is held back; the model is fine-tuned on the rest,
warped afresh at every step, mixed with MNIST training digits in every batch so that it forgets
nothing else, at a small learning rate, with BatchNorm frozen (the Keras transfer-learning guide:
batch statistics of such small, odd batches would unsettle every layer after them). Every
`check_every` steps the held-back examples are read; the step that reads them best (then with the
lowest loss) is kept, provided it loses at most `max_validation_drop` of MNIST validation accuracy,
else the next best, else the base itself. The test split is never read here.

With few examples: where no digit was written twice nothing can be held back; the model trains
for `blind_steps` (about where checked runs stop) and only the validation guard chooses, so the
held-back figures are None. Fewer than `MIN_EXAMPLES` digits are refused. The held-back "after"
figure is of the step chosen on those very examples, so it flatters; `benchmarks/adapt.py`
measures on digits the adaptation never saw.
"""

import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
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

    max_steps: int = 300  # about 25 s on 2 CPU cores; early stopping often ends sooner
    check_every: int = 25  # steps between readings of the held-back examples
    patience: int = 4  # checks without a better reading before stopping
    batch_size: int = 64
    user_share: float = 0.25  # of each batch: the user's examples, drawn with replacement; the rest MNIST
    lr: float = 3e-4  # Adam; the base peaked at 2e-3
    label_smoothing: float = 0.05  # the base's own
    hold_back: float = 0.2  # of each digit written at least twice; at least one, never all
    blind_steps: int = 150  # with nothing held back
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
    steps: int  # training steps of the saved weights; 0: the base's were kept
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
            held = f"held back {self.held_back}: {self.held_back_accuracy_before:.3f} -> {self.held_back_accuracy_after:.3f}"
        return (
            f"adapted on {self.examples - self.held_back} examples ({held}; MNIST validation "
            f"{self.validation_accuracy_before:.4f} -> {self.validation_accuracy_after:.4f}) in {self.steps} "
            f"steps, {self.seconds:.1f} s; saved to {self.model_dir}"
        )


def adapt(
    base: str | Path,
    images: np.ndarray,
    labels: np.ndarray,
    out_dir: str | Path,
    *,
    profile: str | None = None,
    seed: int = 0,
    config: AdaptConfig = AdaptConfig(),  # noqa: B008 (frozen: one shared default is safe)
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
    recognizer = Recognizer.load(base)
    model = recognizer.keras_model
    data = load_dataset("mnist", data_dir, progress=False)
    val_images = scale(data.val_images)
    held_set = (images[held], labels[held])
    before = _Reading(model, held_set, val_images, data.val_labels)
    candidates = fine_tune(model, (images[trained], labels[trained]), held_set, data, config, seed, log)
    after = _guarded(model, candidates, held_set, val_images, data.val_labels, before, config, log)
    temperature = fit_temperature(after.val_probs, data.val_labels)
    calibrated = apply_temperature(after.val_probs, temperature)
    metadata = {
        **{k: v for k, v in recognizer.metadata.items() if k not in STALE_METADATA},
        "temperature": temperature,
        "metrics": {"validation": classification_metrics(data.val_labels, calibrated)},
        "adapted_from": str(base),
        "profile": profile,
        "examples": len(labels),
        "held_back": len(held),
        "held_back_accuracy_before": before.held_accuracy,
        "held_back_accuracy_after": after.held_accuracy,
        "validation_accuracy_before": before.val_accuracy,
        "validation_accuracy_after": after.val_accuracy,
        "adapt_steps": after.step,
        "adapt_config": {**asdict(config), "seed": seed},
    }
    save_model_dir(model, out_dir, metadata)
    return AdaptResult(
        out_dir,
        len(labels),
        len(held),
        after.step,
        before.held_accuracy,
        after.held_accuracy,
        before.val_accuracy,
        after.val_accuracy,
        time.perf_counter() - started,
    )


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
    if not np.issubdtype(digits.dtype, np.integer) or (
        digits.size and not 0 <= digits.min() <= digits.max() <= 9
    ):
        shown = (
            digits.dtype
            if not np.issubdtype(digits.dtype, np.number)
            else f"{digits.min()} to {digits.max()}"
        )
        raise InputError(f"expected labels that are digits 0-9 (integers), got {shown}")
    if len(array) < MIN_EXAMPLES:
        raise InputError(
            f"expected at least {MIN_EXAMPLES} examples to adapt to, got {len(array)}; correct more digits"
        )
    return check_images(array), digits.astype(np.int64)


def _check_config(config: AdaptConfig) -> None:
    if not (0 <= config.hold_back < 1 and 0 < config.user_share < 1):
        raise ConfigError(
            f"hold_back must be in [0, 1) and user_share in (0, 1), got {config.hold_back} and {config.user_share}"
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
    weights: list


def fine_tune(
    model: Any,
    user: tuple[np.ndarray, np.ndarray],
    held: tuple[np.ndarray, np.ndarray],
    data: Dataset,
    config: AdaptConfig,
    seed: int,
    log: Callable[[str], None],
) -> list[_Checkpoint]:
    """Train `model` in place; its weights at step 0 and at every check, best first (with
    nothing held back: latest first)."""
    trainer = _trainer(model, config, seed)
    checkpoints = [_Checkpoint(0, _score(model, held), model.get_weights())]
    steps = config.max_steps if len(held[1]) else config.blind_steps
    best, stale = checkpoints[0].score, 0
    for step, (x, y) in enumerate(_batches(user, data, config, steps, np.random.default_rng(seed)), 1):
        trainer.train_on_batch(x, y)
        if step % config.check_every and step != steps:
            continue
        checkpoints.append(_Checkpoint(step, _score(model, held), model.get_weights()))
        log(f"step {step}: held back {checkpoints[-1].score[0]:.3f}, loss {-checkpoints[-1].score[1]:.4f}")
        best, stale = (checkpoints[-1].score, 0) if checkpoints[-1].score > best else (best, stale + 1)
        if len(held[1]) and stale >= config.patience:
            break
    _unfreeze_batch_norm(model)
    if not len(held[1]):
        return checkpoints[::-1]
    return sorted(checkpoints, key=lambda c: c.score, reverse=True)


def _trainer(model: Any, config: AdaptConfig, seed: int) -> Any:
    import keras

    from digitrec.augment import augmenter

    keras.utils.set_random_seed(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False  # in Keras 3 this also runs it in inference mode
    warp = augmenter(config.rotation_deg, config.shift, config.zoom, config.stroke, config.shear, seed=seed)
    trainer = keras.Sequential([keras.Input(IMAGE_SHAPE), warp, model], name="adapter")
    trainer.compile(
        optimizer=keras.optimizers.Adam(config.lr),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
    )
    return trainer


def _unfreeze_batch_norm(model: Any) -> None:
    """As the model was: a later fine-tuning of the saved model should find BatchNorm trainable."""
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = True


def _batches(
    user: tuple[np.ndarray, np.ndarray],
    data: Dataset,
    config: AdaptConfig,
    steps: int,
    rng: np.random.Generator,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """`steps` batches of the user's examples and MNIST training digits, with one-hot targets."""
    mine = max(1, round(config.batch_size * config.user_share))
    others = config.batch_size - mine
    order = rng.permutation(len(data.train_labels))  # no MNIST digit twice while they last
    for step in range(steps):
        chosen = rng.integers(len(user[1]), size=mine)
        drawn = order[np.arange(step * others, (step + 1) * others) % len(order)]
        x = np.concatenate([user[0][chosen], scale(data.train_images[drawn])])
        labels = np.concatenate([user[1][chosen], data.train_labels[drawn]])
        yield x, np.eye(NUM_CLASSES, dtype=np.float32)[labels]


def _score(model: Any, held: tuple[np.ndarray, np.ndarray]) -> tuple[float, float]:
    images, labels = held
    if not len(labels):
        return 0.0, 0.0
    probs = Recognizer.from_keras(model).predict_proba(images)
    loss = -float(np.mean(np.log(np.maximum(probs[np.arange(len(labels)), labels], 1e-12))))
    return float(np.mean(probs.argmax(1) == labels)), -loss


class _Reading:
    """A model's figures as it is now: held-back accuracy (None: none held back), validation
    probabilities and accuracy."""

    def __init__(
        self,
        model: Any,
        held: tuple[np.ndarray, np.ndarray],
        val_images: np.ndarray,
        val_labels: np.ndarray,
        step: int = 0,
    ):
        self.step = step
        self.held_accuracy = _score(model, held)[0] if len(held[1]) else None
        self.val_probs = Recognizer.from_keras(model).predict_proba(val_images)
        self.val_accuracy = float(np.mean(self.val_probs.argmax(1) == val_labels))


def _guarded(
    model: Any,
    candidates: list[_Checkpoint],
    held: tuple[np.ndarray, np.ndarray],
    val_images: np.ndarray,
    val_labels: np.ndarray,
    before: _Reading,
    config: AdaptConfig,
    log: Callable[[str], None],
) -> _Reading:
    """The best candidate that keeps MNIST validation accuracy within `max_validation_drop` of
    the base's, its weights loaded into `model`. The base itself where it ranks first, or where
    none of the three best trained candidates keeps it (each costs a pass over validation)."""
    trained = 0
    for candidate in candidates:
        if candidate.step == 0 or trained == 3:
            break
        trained += 1
        model.set_weights(candidate.weights)
        reading = _Reading(model, held, val_images, val_labels, candidate.step)
        log(f"step {candidate.step}: validation {reading.val_accuracy:.4f} (base {before.val_accuracy:.4f})")
        # A tolerance of far less than one image: accuracies are counts over 5,000.
        if reading.val_accuracy >= before.val_accuracy - config.max_validation_drop - 1e-9:
            return reading
    log("keeping the base's weights: no trained step read the held-back examples better and kept validation")
    model.set_weights(next(c for c in candidates if c.step == 0).weights)
    return before
