"""Training recipes: every choice that decides a run, one frozen configuration per model.

`recipe("cnn", epochs=50)` is the tuned configuration with overrides; `TrainConfig` checks its
values when made, so a bad flag fails before any data is read.
"""

from dataclasses import dataclass, replace

from digitrec.errors import ConfigError
from digitrec.models import MODELS, PRECISIONS

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run; the defaults are the `cnn` recipe."""

    model: str = "cnn"
    dataset: str = "mnist"
    epochs: int = 30
    batch_size: int = 128
    lr: float = 2e-3  # the peak, reached after warm-up
    optimizer: str = "adamw"
    beta_1: float = 0.9
    beta_2: float = 0.999
    weight_decay: float = 1e-4
    schedule: str = "cosine"  # linear warm-up, then cosine decay to zero
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.05
    augment: bool = True
    rotation_deg: float = 10.0  # when augmenting: rotation up to ± this many degrees
    shift: float = 0.1  # when augmenting: shift up to ± this fraction of the image's size
    zoom: float = 0.1  # when augmenting: zoom in or out up to this fraction
    shear: float = 0.0  # shear factor on each axis when augmenting; 0: off
    elastic_alpha: float = 0.0  # elastic distortion strength when augmenting (Simard et al. use 34); 0: off
    precision: str = "float32"  # or "mixed_bfloat16"; the saved model is float32 either way
    teacher: str = ""  # a trained model (directory or bundled name) whose probabilities are targets
    distill_weight: float = 0.5  # with a teacher: target = (1 - w) · one-hot label + w · teacher's
    ema_momentum: float = 0.0  # keep an exponential moving average of the weights and save it; 0: off
    patience: int = 0  # stop after N epochs without a better val_accuracy, keeping the best; 0: never
    curves: bool = True  # draw training_curves.png at the end (about a second, most of it matplotlib)
    seed: int = 0
    steps_per_execution: int = 1
    op_threads: int = 0  # threads per TensorFlow op; 0 leaves TensorFlow's default
    test_every: int = 0  # print test accuracy every N epochs, as the tutorial did; chooses nothing
    train_limit: int = 0  # train on the first N images only (smoke tests); 0 means all

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ConfigError(f"unknown model {self.model!r}; choose one of {', '.join(MODELS)}")
        for name in ("epochs", "batch_size", "steps_per_execution"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0 < self.lr <= 10:
            raise ConfigError(f"lr must be in (0, 10], got {self.lr}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
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
}


def recipe(model: str = "cnn", **overrides) -> TrainConfig:
    """The tuned configuration for a model, with any non-None override applied."""
    if model not in RECIPES:
        raise ConfigError(f"unknown model {model!r}; choose one of {', '.join(RECIPES)}")
    return replace(RECIPES[model], **{k: v for k, v in overrides.items() if v is not None})
