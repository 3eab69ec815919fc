"""Why the model read what it read: the ink its answer rests on, and training digits like it.

    explanation = explain(Recognizer.load("default"), image)   # image: (28, 28) floats in [0, 1]
    explanation.digit, explanation.runner_up, explanation.saliency
    png = overlay_png(image, explanation.saliency)

The saliency map is occlusion sensitivity (Zeiler & Fergus 2014, "Visualizing and understanding
convolutional networks", section 4.2): each patch of the image is blacked out in turn, and a
pixel is as salient as hiding it lowers the answer's log-odds. It needs nothing but
`predict_proba`, so it explains every backend alike, a LiteRT model too, where gradient maps
need the Keras graph; and unlike guided backpropagation it changes when the model's weights do
(Adebayo et al. 2018, "Sanity checks for saliency maps").
"""

import functools
import io
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from digitrec.contract import IMAGE_SHAPE, NUM_CLASSES, check_images
from digitrec.data import VALIDATION_SIZE, load_dataset, scale
from digitrec.errors import ConfigError, InputError
from digitrec.recognizer import Recognizer

PATCH = 4  # px: wider than an MNIST stroke (2-3 px), so a patch can hide a piece of one
STRIDE = 2  # px: 13 × 13 patches, each pixel under up to 4 of them
WARM = np.array([255, 120, 0], np.float32)  # the saliency's colour over the grey digit

Example = tuple[int, np.ndarray]  # (index in MNIST's training file, its 28×28 uint8 image)


@dataclass(frozen=True)
class Explanation:
    """An answer, its runner-up, the ink that decided it, and training digits of both."""

    digit: int
    runner_up: int
    probabilities: list[float]
    saliency: np.ndarray = field(repr=False)  # (28, 28) float32 in [0, 1]
    nearest: list[Example] = field(repr=False)  # the training digits of `digit` closest to the image
    nearest_runner_up: list[Example] = field(repr=False)

    def to_dict(self) -> dict:
        """JSON-ready: images as 28 lists of 28 numbers, saliency to 3 places, pixels 0-255."""
        return {
            "digit": self.digit,
            "runner_up": self.runner_up,
            "probabilities": [round(p, 6) for p in self.probabilities],
            "saliency": np.round(self.saliency.astype(np.float64), 3).tolist(),
            "nearest": [{"index": i, "pixels": pixels.tolist()} for i, pixels in self.nearest],
            "nearest_runner_up": [
                {"index": i, "pixels": pixels.tolist()} for i, pixels in self.nearest_runner_up
            ],
        }


def explain(recognizer: Recognizer, image: np.ndarray, k: int = 2) -> Explanation:
    """The answer for one image, with its saliency map and `k` training digits of it and of the runner-up."""
    probs, heat = _occlusion(recognizer, _one_image(image))
    digit, runner_up = (int(d) for d in np.argsort(-probs, kind="stable")[:2])  # ties as argmax breaks them
    return Explanation(
        digit,
        runner_up,
        [float(p) for p in probs],
        heat,
        nearest_examples(image, digit, k),
        nearest_examples(image, runner_up, k),
    )


def saliency(recognizer: Recognizer, image: np.ndarray) -> np.ndarray:
    """`(28, 28)` float32 in [0, 1]: how much each pixel's ink holds up the answer; zeros if none does."""
    return _occlusion(recognizer, _one_image(image))[1]


def _occlusion(recognizer: Recognizer, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The image's probabilities, and the mean drop in the answer's log-odds over the patches
    covering each pixel, clipped at 0 and scaled to a maximum of 1."""
    side = IMAGE_SHAPE[0]
    corners = [(r, c) for r in range(0, side - PATCH + 1, STRIDE) for c in range(0, side - PATCH + 1, STRIDE)]
    covering = np.zeros(IMAGE_SHAPE, np.float32)
    for r, c in corners:
        covering[r : r + PATCH, c : c + PATCH] += 1
    # Blacking out background changes nothing, so only patches over ink need the model: about 75
    # of the 169 for a typical digit, which halves the time a map takes.
    inked = [(r, c) for r, c in corners if image[r : r + PATCH, c : c + PATCH].any()]
    batch = np.repeat(image[None], 1 + len(inked), axis=0)  # the image itself first: one model call
    for occluded, (r, c) in zip(batch[1:], inked, strict=True):
        occluded[r : r + PATCH, c : c + PATCH] = 0
    probs = recognizer.predict_proba(batch)
    digit = int(np.argmax(probs[0]))
    # Drops in log-odds, not probability: from 0.9999 to 0.99 is a large doubt in a confident
    # answer, and a drop of 0.0099 in probability would leave its map all but blank.
    answer = np.clip(probs[:, digit].astype(np.float64), 1e-6, 1 - 1e-6)
    log_odds = np.log(answer) - np.log1p(-answer)
    drops = np.zeros(IMAGE_SHAPE, np.float32)
    for drop, (r, c) in zip(log_odds[0] - log_odds[1:], inked, strict=True):
        drops[r : r + PATCH, c : c + PATCH] += drop
    heat = np.clip(drops / covering, 0, None)
    return probs[0], heat / heat.max() if heat.max() > 0 else heat


def nearest_examples(image: np.ndarray, digit: int, k: int = 2) -> list[Example]:
    """The `k` MNIST training images of `digit` closest to `image` in pixels (Euclidean), closest first.

    Each comes with its index in MNIST's training file (5,000 and up: the validation split,
    the first 5,000, is left out, as the models never learn from it).
    """
    query = _one_image(image).ravel()
    if isinstance(digit, bool) or not isinstance(digit, int | np.integer) or not 0 <= digit < NUM_CLASSES:
        raise InputError(f"digit {digit!r}: expected an integer from 0 to 9")
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ConfigError(f"k must be a positive number of examples, got {k!r}")
    images, labels = _training_digits()
    candidates = np.flatnonzero(labels == digit)
    distances = ((scale(images[candidates]).reshape(len(candidates), -1) - query) ** 2).sum(axis=1)
    order = np.argsort(distances, kind="stable")[:k]
    return [(int(candidates[i]) + VALIDATION_SIZE, images[candidates[i]].copy()) for i in order]


@functools.cache
def _training_digits() -> tuple[np.ndarray, np.ndarray]:
    """MNIST's training split, read once per process (45 MB)."""
    mnist = load_dataset("mnist", progress=False)
    return mnist.train_images, mnist.train_labels


def overlay_png(image: np.ndarray, saliency: np.ndarray, scale_px: int = 4) -> bytes:
    """A PNG of the digit in grey with its saliency in orange over it, each pixel `scale_px` wide."""
    grey, heat = _one_image(image), _one_image(saliency)
    alpha = heat[..., None] * 0.8  # the digit shows through even where the saliency is highest
    rgb = grey[..., None] * 255 * (1 - alpha) + WARM * alpha
    size = (IMAGE_SHAPE[1] * scale_px, IMAGE_SHAPE[0] * scale_px)
    picture = Image.fromarray(np.round(rgb).astype(np.uint8), "RGB").resize(size, Image.Resampling.NEAREST)
    out = io.BytesIO()
    picture.save(out, "PNG")
    return out.getvalue()


def _one_image(image: np.ndarray) -> np.ndarray:
    """One image of the input contract, `(28, 28)` floats in [0, 1]; else `InputError`."""
    array = np.asarray(image)
    if array.shape != IMAGE_SHAPE:
        raise InputError(f"expected one image shaped (28, 28), got {array.shape}; pass a batch one at a time")
    return check_images(array[None])[0]
