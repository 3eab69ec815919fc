"""Validation errors of candidate ensembles, for rules fixed in advance; test only with --split test.

Each candidate is NAME=DIR,DIR,...; every model is run once on the 5,000 validation images and
each candidate is scored as the mean of its members' probabilities, the way `digitrec join`
builds the ensemble that would be bundled. Then the validation images that every model misreads:
errors no averaging of these models can mend; `--common-png` draws them, labelled.

`--split test` reads the test set instead, for one purpose only: counting, after every choice is
made, the test images no average of these models can read, which bounds what any ensemble of
them can score. It is never used to pick a candidate.

Usage: python benchmarks/ensemble_candidates.py a=models/ensemble/member-0,models/ensemble/member-1 b=...
       [--common-png errors.png] [--split validation|test]
"""

import argparse

import numpy as np

from digitrec.data import load_dataset, scale
from digitrec.recognizer import Recognizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("candidates", nargs="+", metavar="NAME=DIR,DIR,...")
    parser.add_argument("--common-png", help="draw the images every model misreads into this PNG")
    parser.add_argument("--split", choices=("validation", "test"), default="validation")
    args = parser.parse_args()
    candidates = dict(spec.split("=", 1) for spec in args.candidates)
    members = {name: dirs.split(",") for name, dirs in candidates.items()}
    data = load_dataset("mnist")
    raw_images, labels = data.split(args.split)
    images = scale(raw_images)
    probabilities = {d: Recognizer.load(d).predict_proba(images) for dirs in members.values() for d in dirs}

    def errors(p: np.ndarray) -> int:
        return int((p.argmax(1) != labels).sum())

    for model_dir, p in probabilities.items():
        print(f"member {model_dir:40s} {args.split} errors {errors(p):3d}")
    for name, dirs in members.items():
        mean = np.mean([probabilities[d] for d in dirs], axis=0)
        print(f"candidate {name:8s} {len(dirs):2d} members  {args.split} errors {errors(mean):3d}")
    common = np.flatnonzero(np.all([p.argmax(1) != labels for p in probabilities.values()], axis=0))
    answers = np.mean(list(probabilities.values()), axis=0).argmax(1)
    print(f"misread by all {len(probabilities)} models: {len(common)} images")
    for i in common:
        print(f"  {args.split} image {i:4d}  label {labels[i]}  read as {answers[i]}")
    if args.common_png:
        draw_strip(raw_images[common], labels[common], answers[common], args.common_png)


def draw_strip(images: np.ndarray, labels: np.ndarray, answers: np.ndarray, path: str) -> None:
    """The images in a row, dark on light, four times their size, each captioned label→answer."""
    from PIL import Image, ImageDraw

    scale_by, cell = 4, 28 * 4 + 8
    strip = Image.new("L", (max(1, len(images)) * cell, cell + 16), 255)
    draw = ImageDraw.Draw(strip)
    for k, (image, label, answer) in enumerate(zip(images, labels, answers, strict=True)):
        tile = Image.fromarray(255 - image).resize((28 * scale_by, 28 * scale_by), Image.NEAREST)
        strip.paste(tile, (k * cell + 4, 4))
        draw.text((k * cell + 4, cell), f"label {label} -> {answer}", fill=0)
    strip.save(path)


if __name__ == "__main__":
    main()
