"""The one input contract of every model, stated once and checked in one place.

Every model digitrec trains, loads or exports, and the TF Serving route, take the same thing:
`(n, 28, 28)` floats in [0, 1], white ink on black, as MNIST; and give `(n, 10)`
probabilities. Photos and drawings get there through `digitrec.preprocess`; MNIST's uint8
pixels through `digitrec.data.scale`.
"""

import numpy as np

from digitrec.errors import InputError

IMAGE_SHAPE = (28, 28)
NUM_CLASSES = 10


def check_images(images: object) -> np.ndarray:
    """`images` as float32 `(n, 28, 28)` in [0, 1], or an `InputError` saying what is wrong."""
    try:
        array = np.asarray(images)
    except (ValueError, TypeError) as exc:  # ragged nested lists, objects NumPy cannot stack
        raise InputError(
            f"expected images shaped (n, 28, 28); got ragged rows, which NumPy cannot stack ({exc})"
        ) from None
    if array.ndim != 3 or array.shape[1:] != IMAGE_SHAPE:
        hint = "; pass a single image as images[None]" if array.shape == IMAGE_SHAPE else ""
        raise InputError(
            f"expected images shaped (n, 28, 28), got {array.shape}{hint}; "
            "pass photos through digitrec.preprocess (or Recognizer.predict) first"
        )
    if not np.issubdtype(array.dtype, np.floating):
        raise InputError(
            f"expected floats in [0, 1], got {array.dtype} pixels; divide 0-255 pixels by 255 "
            "(digitrec.data.scale) first"
        )
    if array.size and not (np.isfinite(array).all() and array.min() >= 0 and array.max() <= 1):
        finite = array[np.isfinite(array)]
        seen = f"values from {finite.min():g} to {finite.max():g}" if finite.size else "no finite values"
        raise InputError(
            f"expected pixel values in [0, 1] (white ink on black), got {seen}"
            f"{'' if finite.size == array.size else ', and NaN or infinity'}; "
            "divide 0-255 pixels by 255 first"
        )
    return array.astype(np.float32, copy=False)
