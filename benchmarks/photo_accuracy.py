"""Accuracy on MNIST test digits rendered as photos of ink on paper, against the raw test set.

Every test digit (or the first N) is drawn by `digitrec.synth` as a user's photo would show it:
100-300 px tall, off-centre with margins, tinted paper, uneven light, noise, blur, JPEG or PNG,
thick or thin strokes, and one in five as light ink on a dark board. Each photo goes through
`digitrec.preprocess.to_mnist` and the model; the accuracy is compared with the same model on the
raw 28×28 test images. Exits 1 if the photos lose more than 0.3 points.

Usage: python benchmarks/photo_accuracy.py [--model M] [--n N] [--workers W]
"""

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from digitrec.data import load_dataset, scale
from digitrec.preprocess import to_mnist
from digitrec.synth import PhotoStyle, render_photo

MAX_DROP_POINTS = 0.3


def photo_then_mnist(args: tuple[int, np.ndarray]) -> np.ndarray:
    index, digit = args
    rng = np.random.default_rng(index)
    style = PhotoStyle.random(rng, light_on_dark=index % 5 == 4)
    return to_mnist(render_photo(digit, style, seed=index)).image


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="default")
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    data = load_dataset("mnist")
    images, labels = scale(data.test_images[: args.n]), data.test_labels[: args.n]
    started = time.perf_counter()
    with ProcessPoolExecutor(args.workers) as pool:
        photos = np.stack(list(pool.map(photo_then_mnist, enumerate(images), chunksize=64)))
    prepared = time.perf_counter() - started

    from digitrec.recognizer import Recognizer

    recognizer = Recognizer.load(args.model)
    raw = float(np.mean(recognizer.predict_proba(images).argmax(1) == labels))
    photo = float(np.mean(recognizer.predict_proba(photos).argmax(1) == labels))
    drop = (raw - photo) * 100
    print(
        f"{args.model} on {len(labels)} MNIST test digits: raw {raw:.4f}, as photos {photo:.4f}, "
        f"drop {drop:.2f} points (limit {MAX_DROP_POINTS}); {prepared:.0f} s to render and preprocess"
    )
    return 0 if drop <= MAX_DROP_POINTS else 1


if __name__ == "__main__":
    sys.exit(main())
