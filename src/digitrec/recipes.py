"""Training recipes: every choice that decides a run, one frozen configuration per model.

`recipe("cnn", epochs=50)` is the tuned configuration with overrides; `TrainConfig` checks its
values when made, so a bad flag fails before any data is read.
"""

from dataclasses import dataclass, field, fields, replace
from typing import Any

from digitrec.errors import ConfigError, did_you_mean

# The zoo's architectures (each built by `digitrec.models`); named here so that a configuration
# is checked without importing Keras.
ARCHITECTURES = ("softmax", "mlp", "lenet5", "fast", "cnn")
# Mixed bfloat16 computes in bfloat16 and keeps float32 weights: whole `cnn` runs about 1.2×
# faster on a 2-core CPU with AVX-512 BF16 (benchmarks/RESULTS.md); emulated, hence slower, on
# CPUs without bfloat16 units.
PRECISIONS = ("float32", "mixed_bfloat16")
OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "cosine")
STRATEGIES = ("default", "mirrored", "multi-worker")
AUGMENTATION_AMOUNTS = ("rotation_deg", "shift", "zoom", "shear", "elastic_alpha")


def _setting(default: Any, help: str, flag: str = "", choices: tuple = ()) -> Any:
    """A field that is also a `digitrec train` flag: `--FLAG` (the field's name, dashed, if not
    given), with its help text here, once, beside its default."""
    return field(default=default, metadata={"help": help, "flag": flag, "choices": choices})


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run; the defaults are the `cnn` recipe."""

    model: str = "cnn"  # the architecture (digitrec.models.MODELS); a recipe sets it
    dataset: str = _setting("mnist", "mnist, fashion-mnist or kmnist")
    epochs: int = _setting(30, "passes over the training images")
    batch_size: int = _setting(128, "images per step (global, over all replicas)")
    lr: float = _setting(2e-3, "learning rate: the peak, reached after warm-up, for schedules")
    optimizer: str = "adamw"
    beta_1: float = 0.9
    beta_2: float = 0.999
    weight_decay: float = 1e-4
    schedule: str = "cosine"  # linear warm-up, then cosine decay to zero
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.05
    augment: bool = _setting(True, "distort the training images (the cnn recipe does)")
    rotation_deg: float = _setting(10.0, "when augmenting: rotate up to ± DEG", flag="rotation")
    shift: float = _setting(0.1, "when augmenting: shift up to ± F of the image's size")
    zoom: float = _setting(0.1, "when augmenting: zoom in or out up to ± F")
    shear: float = _setting(0.0, "when augmenting: shear factor on each axis, e.g. 0.2; 0: off")
    elastic_alpha: float = _setting(
        0.0, "when augmenting: elastic distortion strength (Simard et al. use 34); 0: off", flag="elastic"
    )
    precision: str = _setting(
        "float32",
        "mixed_bfloat16 computes in bfloat16: faster on GPUs and CPUs with AVX-512 BF16 or AMX, far "
        "slower elsewhere; the saved model is float32 either way",
        choices=PRECISIONS,
    )
    teacher: str = _setting("", "distil: a trained model whose probabilities are mixed into the targets")
    distill_weight: float = _setting(0.5, "with a teacher: target = (1 - W) one-hot label + W teacher's")
    init: str = _setting("", "fine-tune: start from a trained model's weights (a directory or bundled name)")
    non_digits: float = _setting(
        0.0, "add N synthetic non-digits per training digit, taught a uniform answer (outlier exposure)"
    )
    restyle: float = _setting(0.0, "redraw this share of training digits bold, two-level, blurred or blocky")
    ema_momentum: float = _setting(
        0.0, "keep an exponential moving average of the weights (e.g. 0.999) and save it", flag="ema"
    )
    patience: int = _setting(
        0, "stop after N epochs without a better val_accuracy, keeping the best; 0: never"
    )
    members: int = _setting(1, "more than 1: an ensemble of members with seeds SEED, SEED+1, …")
    strategy: str = _setting(
        "default",
        "tf.distribute: local GPUs (mirrored) or a TF_CONFIG cluster (multi-worker)",
        choices=STRATEGIES,
    )
    worker_timeout_s: float = _setting(
        60.0, "multi-worker: fail when a worker is silent this many seconds", flag="worker-timeout"
    )
    curves: bool = True  # draw training_curves.png at the end (about a second, most of it matplotlib)
    seed: int = _setting(0, "seed of weights, shuffling and augmentation")
    steps_per_execution: int = 1
    op_threads: int = 0  # threads per TensorFlow op; 0 leaves TensorFlow's default
    test_every: int = 0  # print test accuracy every N epochs, as the tutorial did; chooses nothing
    train_limit: int = _setting(0, "train on the first N images only (smoke runs); 0: all")

    def __post_init__(self) -> None:
        if self.model not in ARCHITECTURES:
            raise ConfigError(f"unknown model {self.model!r}; choose one of {', '.join(ARCHITECTURES)}")
        for name in ("epochs", "batch_size", "steps_per_execution", "members"):
            if not 1 <= getattr(self, name) <= 1_000_000:
                raise ConfigError(
                    f"{name} must be a whole number from 1 to 1,000,000, got {getattr(self, name)}"
                )
        if not 0 <= self.seed < 2**32:
            raise ConfigError(f"seed must be a whole number from 0 to 2**32 - 1, got {self.seed}")
        if not (0 <= self.non_digits <= 1 and 0 <= self.restyle <= 1):
            raise ConfigError(
                f"non_digits and restyle are shares from 0 to 1, got {self.non_digits} and {self.restyle}"
            )
        if not 0 < self.lr <= 10:
            raise ConfigError(f"lr must be in (0, 10], got {self.lr}")
        if self.precision not in PRECISIONS or self.strategy not in STRATEGIES:
            raise ConfigError(f"precision must be one of {PRECISIONS} and strategy one of {STRATEGIES}")
        if self.optimizer not in OPTIMIZERS or self.schedule not in SCHEDULES:
            raise ConfigError(f"optimizer must be one of {OPTIMIZERS} and schedule one of {SCHEDULES}")
        fractions = (self.label_smoothing, self.ema_momentum, self.shear, self.shift, self.zoom)
        if not all(0 <= value < 1 for value in fractions):
            raise ConfigError("label_smoothing, ema_momentum, shear, shift and zoom must be in [0, 1)")
        if not 0 <= self.rotation_deg <= 180:
            raise ConfigError(f"rotation_deg must be in [0, 180], got {self.rotation_deg}")
        if not 0 <= self.distill_weight <= 1:
            raise ConfigError(f"distill_weight must be in [0, 1], got {self.distill_weight}")
        if min(self.warmup_epochs, self.train_limit, self.patience, self.op_threads, self.elastic_alpha) < 0:
            raise ConfigError("warmup_epochs, train_limit, patience, op_threads, elastic_alpha must be >= 0")
        if not self.worker_timeout_s > 0:
            raise ConfigError(f"worker_timeout_s must be above 0, got {self.worker_timeout_s}")
        if self.members > 1 and self.strategy != "default":
            raise ConfigError(
                "a strategy trains one model; an ensemble (members > 1) trains its members one by one"
            )


# Settings that say how to run, not what to train: a run may resume with others.
RUNNING_SETTINGS = ("strategy", "worker_timeout_s")


RECIPES = {
    # The tutorial's settings: plain gradient descent, lr 0.01, batch 100, 10 epochs. Many steps
    # per execution because per-step Python overhead dominates a single dense layer.
    "softmax": TrainConfig(
        model="softmax",
        epochs=10,
        batch_size=100,
        lr=0.01,
        optimizer="sgd",
        weight_decay=0.0,
        schedule="constant",
        warmup_epochs=0,
        label_smoothing=0.0,
        augment=False,
        steps_per_execution=100,
        op_threads=1,  # a 100×784×10 product costs less than handing it to a second thread
        curves=False,  # a 3-second run: `digitrec evaluate --report` draws its curves from history.json
        test_every=2,
    ),
    "mlp": TrainConfig(model="mlp", epochs=10, lr=1e-3, optimizer="adam", augment=False, label_smoothing=0.0),
    "lenet5": TrainConfig(model="lenet5", epochs=10, lr=2e-3, optimizer="adam", augment=False),
    # One fifth of training as warm-up to a high peak, Adam with short memory (β 0.7, 0.9): the
    # recipe of the fastest public MNIST runs; two epochs give 99.1-99.3%.
    "fast": TrainConfig(
        model="fast",
        epochs=2,
        lr=0.01,
        optimizer="adam",
        beta_1=0.7,
        beta_2=0.9,
        weight_decay=0.0,
        warmup_epochs=0.4,
        label_smoothing=0.0,
        augment=False,
    ),
    "cnn": TrainConfig(),
    # Members differ only in seed, fixed before training: none is picked or dropped by its score.
    "ensemble": TrainConfig(members=5),
}


def recipe(name: str = "cnn", **overrides: Any) -> TrainConfig:
    """The tuned configuration of a recipe, with every override that is not None applied."""
    if name not in RECIPES:
        raise ConfigError(
            f"unknown recipe {name!r}; choose one of {', '.join(RECIPES)}{did_you_mean(name, RECIPES)}"
        )
    return configure(RECIPES[name], **overrides)


def configure(base: TrainConfig, **overrides: Any) -> TrainConfig:
    """`base` with every override that is not None applied.

    An override the run would ignore is refused: whoever set it expected it to change the run.
    """
    given = {k: v for k, v in overrides.items() if v is not None}
    config = replace(base, **given)
    amounts = [name for name in AUGMENTATION_AMOUNTS if name in given]
    if amounts and not config.augment:
        raise ConfigError(
            f"{_named(amounts[0])} is augmentation, but this run does not augment: add --augment"
        )
    if "distill_weight" in given and not config.teacher:
        raise ConfigError(f"{_named('distill_weight')} weighs a teacher's probabilities: add --teacher MODEL")
    if "worker_timeout_s" in given and config.strategy != "multi-worker":
        raise ConfigError(f"{_named('worker_timeout_s')} is for --strategy multi-worker")
    return config


def flag_of(name: str) -> str:
    """The `digitrec train` flag of a TrainConfig field."""
    setting = next(f for f in fields(TrainConfig) if f.name == name)
    return "--" + (setting.metadata.get("flag") or name.replace("_", "-"))


def _named(name: str) -> str:
    return f"{flag_of(name)} ({name})"
