"""The model zoo: one small builder per architecture, each an uncompiled Keras model.

Every model takes the input of `digitrec.contract` and returns `(n, 10)` probabilities. Photo
clean-up happens before (in `digitrec.preprocess`), augmentation only while training (in
`digitrec.augment`).
"""

from collections.abc import Callable, Sequence
from pathlib import Path

import keras
from keras import layers

from digitrec.contract import IMAGE_SHAPE, NUM_CLASSES
from digitrec.errors import ConfigError
from digitrec.recipes import PRECISIONS


def _pixels() -> keras.KerasTensor:
    return keras.Input(IMAGE_SHAPE, name="pixels")


def _probabilities(x: keras.KerasTensor, **kwargs) -> keras.KerasTensor:
    # Always float32: under mixed precision a bfloat16 softmax rounds every p > 0.998 to 1.
    return layers.Dense(NUM_CLASSES, activation="softmax", dtype="float32", **kwargs)(x)


def softmax() -> keras.Model:
    """The tutorial's model: softmax regression, y = softmax(xW + b), W and b zero-initialised."""
    inputs = _pixels()
    x = layers.Flatten()(inputs)
    outputs = _probabilities(x, kernel_initializer="zeros")
    return keras.Model(inputs, outputs, name="softmax")


def mlp() -> keras.Model:
    """Two hidden layers of 512 ReLU units with dropout (the classic Keras mnist_mlp)."""
    inputs = _pixels()
    x = layers.Flatten()(inputs)
    for _ in range(2):
        x = layers.Dropout(0.2)(layers.Dense(512, activation="relu")(x))
    return keras.Model(inputs, _probabilities(x), name="mlp")


def _conv_pool(x: keras.KerasTensor, filters: int, kernel: int, padding: str = "valid") -> keras.KerasTensor:
    x = layers.Conv2D(filters, kernel, padding=padding, activation="relu")(x)
    return layers.MaxPooling2D()(x)


def lenet5() -> keras.Model:
    """LeCun et al. 1998, with ReLU and max-pooling in place of tanh and subsampling."""
    inputs = _pixels()
    x = _conv_pool(layers.Reshape((*IMAGE_SHAPE, 1))(inputs), filters=6, kernel=5, padding="same")
    x = layers.Flatten()(_conv_pool(x, filters=16, kernel=5))
    for units in (120, 84):
        x = layers.Dense(units, activation="relu")(x)
    return keras.Model(inputs, _probabilities(x), name="lenet5")


def fast() -> keras.Model:
    """A 29k-parameter CNN that reaches 99% in one or two epochs on a CPU.

    After the small nets of the fastest public MNIST runs (e.g. tuomaso/train_mnist_fast): few
    filters, valid convolutions, no dense hidden layer, so an epoch costs a few seconds.
    """
    inputs = _pixels()
    x = _conv_pool(layers.Reshape((*IMAGE_SHAPE, 1))(inputs), filters=16, kernel=5)
    x = _conv_pool(x, filters=32, kernel=3)
    x = layers.Conv2D(64, 3, activation="relu")(x)
    outputs = _probabilities(layers.Flatten()(x))
    return keras.Model(inputs, outputs, name="fast")


def _conv_bn(x: keras.KerasTensor, filters: int, kernel: int, strides: int = 1) -> keras.KerasTensor:
    x = layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False)(x)
    return layers.Activation("relu")(layers.BatchNormalization()(x))


def cnn() -> keras.Model:
    """The accurate default: three conv-BN blocks with strided 5×5 convolutions for pooling.

    After C. Deotte's "25 million images" Kaggle study of MNIST CNNs, where this shape with
    dropout 0.4 and augmentation was the best single network.
    """
    inputs = _pixels()
    x = layers.Reshape((*IMAGE_SHAPE, 1))(inputs)
    for filters in (32, 64):
        x = _conv_bn(x, filters, 3)
        x = _conv_bn(x, filters, 3)
        x = layers.Dropout(0.4)(_conv_bn(x, filters, 5, strides=2))
    x = layers.Flatten()(_conv_bn(x, 128, 4))
    outputs = _probabilities(layers.Dropout(0.4)(x))
    return keras.Model(inputs, outputs, name="cnn")


def ensemble(members: Sequence[keras.Model]) -> keras.Model:
    """One model whose output is the mean of its members' probabilities."""
    if not members:
        raise ConfigError("an ensemble needs at least one member model")
    inputs = _pixels()
    outputs = [member(inputs) for member in members]
    mean = layers.Average()(outputs) if len(outputs) > 1 else outputs[0]
    return keras.Model(inputs, mean, name="ensemble")


# Keyed by each builder's own name, in the order of `recipes.ARCHITECTURES` (a test holds them equal).
MODELS: dict[str, Callable[[], keras.Model]] = {f.__name__: f for f in (softmax, mlp, lenet5, fast, cnn)}

# The /proc/cpuinfo flags of CPUs that compute in bfloat16: x86 (AVX-512 BF16, AMX) and Arm.
BFLOAT16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})


def bfloat16_is_emulated(cpuinfo: Path | str = "/proc/cpuinfo") -> bool:
    """Whether bfloat16 would run emulated here: on CPUs only, none of them with bfloat16 units.

    Emulated, mixed bfloat16 trains the `cnn` about 8× slower than float32 (an AVX2-only EPYC,
    benchmarks/RESULTS.md). False where it cannot tell (no /proc, as on macOS).
    """
    if any(not device.lower().startswith("cpu") for device in keras.distribution.list_devices()):
        return False
    try:
        lines = Path(cpuinfo).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return False
    flags = [line.partition(":")[2].split() for line in lines if line.startswith(("flags", "Features"))]
    return bool(flags) and not any(BFLOAT16_CPU_FLAGS & set(cpu) for cpu in flags)


def precision_warning(precision: str) -> str | None:
    """A line to show before training in `precision`, where it would be slow on this machine."""
    if precision == "mixed_bfloat16" and bfloat16_is_emulated():
        return (
            f"warning: this machine has no bfloat16 units (no GPU; the CPU has none of "
            f"{', '.join(sorted(BFLOAT16_CPU_FLAGS))}), so mixed_bfloat16 is emulated and far "
            "slower than float32 here"
        )
    return None


def build(name: str, precision: str = "float32") -> keras.Model:
    """A fresh, uncompiled model of the named architecture, computing in `precision`."""
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)  # read by each layer as it is created
    try:
        return MODELS[name]()
    finally:
        keras.config.set_dtype_policy(previous)


def float32_copy(model: keras.Model, name: str) -> keras.Model:
    """The same weights in a float32 model: what is saved, exported and served.

    Mixed precision keeps its weights in float32, so the copy is exact; only the arithmetic of
    the copy differs.
    """
    copy = build(name)
    copy.set_weights(model.get_weights())
    return copy
