"""Test-time augmentation, measured on the validation split only.

Each model's probabilities are averaged over the image and copies of it shifted by one pixel
(4 or 8 neighbours); the number of validation errors is printed for each set of views. The
test set is not read: a view set that wins here is adopted only by a rule fixed in advance
(RESULTS.md), and its test figure read once, afterwards.

Usage: python benchmarks/tta.py [--models default ensemble ...]
"""

import argparse

import numpy as np

from digitrec.data import load_dataset, scale
from digitrec.recognizer import Recognizer

VIEWS = {
    "image alone": [(0, 0)],
    "+ 4 one-pixel shifts": [(0, 0), (1, 0), (-1, 0), (0, 1), (0, -1)],
    "+ 8 one-pixel shifts": [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)],
}


def shifted(images: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """`images` moved by (dy, dx) pixels, the uncovered border black."""
    padded = np.pad(images, ((0, 0), (1, 1), (1, 1)))
    return padded[:, 1 - dy : 29 - dy, 1 - dx : 29 - dx]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["default", "ensemble"])
    args = parser.parse_args()
    data = load_dataset("mnist")
    images, labels = scale(data.val_images), data.val_labels
    for name in args.models:
        recognizer = Recognizer.load(name)
        by_shift = {s: recognizer.predict_proba(shifted(images, *s)) for s in VIEWS["+ 8 one-pixel shifts"]}
        for view, shifts in VIEWS.items():
            errors = int((np.mean([by_shift[s] for s in shifts], axis=0).argmax(1) != labels).sum())
            accuracy = 1 - errors / len(labels)
            print(f"{name:>10}  {view:<22} validation errors {errors:3d}  accuracy {accuracy:.4f}")


if __name__ == "__main__":
    main()
