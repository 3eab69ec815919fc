"""How often the "uncertain" flag is raised on digits, and on things that are not digits.

MNIST's test set (raw), letters drawn in Pillow's bundled font (those that do not look like a
digit), and random scribbles go through `Recognizer.predict`; for each the share flagged
uncertain is printed, and for MNIST the accuracy of the answers that were not flagged. The
flag's threshold is `digitrec.recognizer.UNCERTAIN_BELOW`.

Usage: python benchmarks/uncertainty.py [--model M] [--uncalibrated]
"""

import argparse

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from digitrec.data import load_dataset, scale
from digitrec.recognizer import UNCERTAIN_BELOW, Recognizer

LETTERS = "ACEFHKMNPRTUVWXYacefhkmnrtuvwxy"  # no O, I, l, S, Z, B, G, q, g...: they pass for digits


def letters(rng: np.random.Generator) -> list[Image.Image]:
    pages = []
    for size in (60, 100, 140):
        font = ImageFont.load_default(size=size)
        for letter in LETTERS:
            page = Image.new("L", (size * 2, size * 2), 255)
            ImageDraw.Draw(page).text((size // 2, size // 3), letter, font=font, fill=0)
            pages.append(page.rotate(float(rng.uniform(-10, 10)), fillcolor=255))
    return pages


def scribbles(rng: np.random.Generator, count: int = 100) -> list[Image.Image]:
    pages = []
    for _ in range(count):
        page = Image.new("L", (200, 200), 255)
        points = [tuple(int(v) for v in p) for p in rng.integers(20, 180, (int(rng.integers(6, 16)), 2))]
        ImageDraw.Draw(page).line(points, fill=0, width=int(rng.integers(4, 12)))
        pages.append(page)
    return pages


def sweep(recognizer: Recognizer, data, rng: np.random.Generator) -> None:
    """The share flagged of validation digits, letters and scribbles at each threshold: what the
    threshold is chosen on (the test split takes no part)."""
    images, _ = data.split("validation")
    digits = recognizer.predict_proba(scale(images)).max(1)
    symbols = {
        name: [a.confidence for a in recognizer.predict(pages)]
        for name, pages in (("letters", letters(rng)), ("scribbles", scribbles(rng)))
    }
    for threshold in np.arange(0.80, 1.0, 0.01):
        shares = "  ".join(f"{name} {np.mean(np.array(c) < threshold):.1%}" for name, c in symbols.items())
        print(f"{threshold:.2f}: validation digits {np.mean(digits < threshold):.2%}  {shares}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="default")
    parser.add_argument("--uncalibrated", action="store_true", help="ignore the model's fitted temperature")
    parser.add_argument("--sweep", action="store_true", help="flag rates by threshold, validation split only")
    args = parser.parse_args()
    recognizer = Recognizer.load(args.model)
    if args.uncalibrated:
        recognizer.temperature = 1.0
    rng = np.random.default_rng(0)
    data = load_dataset("mnist")
    if args.sweep:
        sweep(recognizer, data, rng)
        return
    probs = recognizer.predict_proba(scale(data.test_images))
    flagged = probs.max(1) < UNCERTAIN_BELOW
    right = probs.argmax(1) == data.test_labels
    print(
        f"threshold {UNCERTAIN_BELOW}: MNIST test flagged {flagged.mean():.2%}; accuracy {right.mean():.4f} "
        f"overall, {right[~flagged].mean():.4f} on the rest; {(~right & ~flagged).sum()} confident errors"
    )
    for name, pages in (("letters", letters(rng)), ("scribbles", scribbles(rng))):
        answers = recognizer.predict(pages)
        print(f"{name}: {np.mean([a.uncertain for a in answers]):.1%} of {len(answers)} flagged uncertain")


if __name__ == "__main__":
    main()
