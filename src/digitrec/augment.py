"""Training-time augmentation, as Keras layers so it runs on any backend and on the device.

Handwriting varies in slant, position, size and pen width; these layers draw such variations
afresh for every batch. They act only when `training=True` and are never part of a saved or
exported model: `train` wraps them around the model and saves the model alone.
"""

from typing import Any

import keras
import numpy as np
from keras import layers, ops

from digitrec.models import IMAGE_SHAPE

# Whatever the backend computes with (a tf.Tensor, a jax.Array, a NumPy array): Keras has no
# common type for them.
Tensor = Any


@keras.saving.register_keras_serializable(package="digitrec")
class RandomStrokeWidth(layers.Layer):
    """Thicken or thin the strokes of each image by up to `amount` of a 3×3 dilation or erosion."""

    def __init__(self, amount: float = 0.5, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.amount = amount
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=False):
        if not training or self.amount == 0:
            return images
        x = ops.expand_dims(images, -1)
        dilated = ops.max_pool(x, 3, strides=1, padding="same")
        eroded = -ops.max_pool(-x, 3, strides=1, padding="same")
        shape = (ops.shape(x)[0], 1, 1, 1)
        t = keras.random.uniform(shape, -self.amount, self.amount, seed=self.seed_generator)
        out = x + ops.relu(t) * (dilated - x) + ops.relu(-t) * (eroded - x)
        return ops.squeeze(ops.clip(out, 0.0, 1.0), -1)

    def get_config(self):
        return {**super().get_config(), "amount": self.amount, "seed": self.seed}


@keras.saving.register_keras_serializable(package="digitrec")
class RandomWarp(layers.Layer):
    """Random rotation, shift, zoom, shear and elastic distortion, resampled once.

    Keras's RandomRotation, RandomTranslation and RandomZoom each interpolate the image anew,
    and three bilinear resamplings in a row blur a digit's strokes visibly, far beyond any test
    digit; composing the transforms into one sampling grid blurs once. Rotation is up to
    ±`rotation_deg` degrees; shift up to ±`shift` of the image's size and zoom in or out up to
    `zoom`, both drawn for each axis apart; shear a factor up to ±`shear` on each axis. The
    elastic field (Simard, Steinkraus and Platt 2003: uniform noise smoothed by a Gaussian of
    `sigma` pixels, scaled by `alpha`) bends an `elastic_share` of the images: a network that
    never sees an unbent digit reads sharp ones worse.
    """

    def __init__(
        self,
        rotation_deg: float = 10.0,
        shift: float = 0.1,
        zoom: float = 0.1,
        shear: float = 0.0,
        alpha: float = 0.0,
        sigma: float = 4.0,
        elastic_share: float = 0.5,
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.rotation_deg, self.shift, self.zoom, self.shear = rotation_deg, shift, zoom, shear
        self.alpha, self.sigma, self.elastic_share, self.seed = alpha, sigma, elastic_share, seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        radius = int(3 * sigma)
        taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
        kernel = np.outer(taps, taps) / np.outer(taps, taps).sum()
        self.kernel = kernel[:, :, None, None].astype("float32")

    def _uniform(self, n, bound: float):
        """One draw per image in [-bound, bound], shaped to broadcast over its pixels."""
        return keras.random.uniform((n, 1, 1), -bound, bound, seed=self.seed_generator)

    def _elastic_field(self, n):
        """(n, 2, h, w) displacements in pixels, zero for the images left unbent."""
        height, width = IMAGE_SHAPE
        noise = keras.random.uniform((n * 2, height, width, 1), -1.0, 1.0, seed=self.seed_generator)
        field = ops.conv(noise, ops.convert_to_tensor(self.kernel), padding="same") * self.alpha
        bent = keras.random.uniform((n, 1, 1, 1), seed=self.seed_generator) < self.elastic_share
        return ops.reshape(field, (n, 2, height, width)) * ops.cast(bent, field.dtype)

    def call(self, images, training=False):
        if not training:
            return images
        n, (height, width) = ops.shape(images)[0], IMAGE_SHAPE
        centre_row, centre_col = (height - 1) / 2, (width - 1) / 2
        rows, cols = ops.meshgrid(
            ops.arange(height, dtype="float32") - centre_row,
            ops.arange(width, dtype="float32") - centre_col,
            indexing="ij",
        )
        # Where each output pixel reads from, about the centre: shear, then zoom, then rotation.
        rows, cols = rows + self._uniform(n, self.shear) * cols, cols + self._uniform(n, self.shear) * rows
        rows, cols = rows * (1 + self._uniform(n, self.zoom)), cols * (1 + self._uniform(n, self.zoom))
        angle = self._uniform(n, np.deg2rad(self.rotation_deg))
        cos, sin = ops.cos(angle), ops.sin(angle)
        rows, cols = cos * rows - sin * cols, sin * rows + cos * cols
        rows = rows + centre_row + self._uniform(n, self.shift * height)
        cols = cols + centre_col + self._uniform(n, self.shift * width)
        if self.alpha:
            field = self._elastic_field(n)
            rows, cols = rows + field[:, 0], cols + field[:, 1]
        return bilinear_sample(images, rows, cols)

    def get_config(self):
        names = ("rotation_deg", "shift", "zoom", "shear", "alpha", "sigma", "elastic_share", "seed")
        return {**super().get_config(), **{name: getattr(self, name) for name in names}}


def augmenter(
    rotation_deg: float = 10.0,
    shift: float = 0.1,
    zoom: float = 0.1,
    stroke: float = 0.5,
    shear: float = 0.0,
    elastic_alpha: float = 0.0,
    seed: int | None = None,
) -> keras.Sequential:
    """Random stroke width, then rotation, shift and zoom: the recipe of the best MNIST CNNs.

    Rotation ±10°, shift ±10% and zoom ±10% follow Deotte's Kaggle study; stroke width stands in
    for the different pens and scanners of real digits. Shear (a factor on each axis) and
    elastic distortion are off unless asked for.
    """
    # Two seeds, not one: layers given the same seed draw the same numbers, step after step.
    seeds = (seed, seed + 1) if seed is not None else (None, None)
    return keras.Sequential(
        [
            keras.Input(IMAGE_SHAPE),
            # On the sharp image, before the warp's one interpolation softens its edges.
            RandomStrokeWidth(stroke, seed=seeds[0]),
            RandomWarp(rotation_deg, shift, zoom, shear, alpha=elastic_alpha, seed=seeds[1]),
        ],
        name="augment",
    )


def bilinear_sample(images: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
    """`images` (n, h, w) read at fractional (`rows`, `cols`), each (n, h, w); outside is 0.

    Our own rather than `ops.image.map_coordinates`: that one interpolates along the batch axis
    too and, on TensorFlow, needs the batch size known when the graph is traced, which `fit`
    does not give for a last, smaller batch.
    """
    n, height, width = ops.shape(images)[0], images.shape[1], images.shape[2]
    # A zero border, and coordinates clamped onto it: every sample outside the image reads 0.
    padded = ops.reshape(ops.pad(images, [[0, 0], [1, 1], [1, 1]]), (-1,))
    rows = ops.clip(rows + 1.0, 0.0, height + 1.0)
    cols = ops.clip(cols + 1.0, 0.0, width + 1.0)
    top, left = ops.floor(rows), ops.floor(cols)
    down, right = rows - top, cols - left
    top, left = ops.cast(top, "int32"), ops.cast(left, "int32")
    bottom, across = ops.minimum(top + 1, height + 1), ops.minimum(left + 1, width + 1)
    offset = ops.reshape(ops.arange(n, dtype="int32") * ((height + 2) * (width + 2)), (-1, 1, 1))

    def pixel(r, c):
        return ops.take(padded, offset + r * (width + 2) + c)

    return (
        pixel(top, left) * (1 - down) * (1 - right)
        + pixel(top, across) * (1 - down) * right
        + pixel(bottom, left) * down * (1 - right)
        + pixel(bottom, across) * down * right
    )
