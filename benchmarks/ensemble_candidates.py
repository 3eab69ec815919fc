"""Validation errors of candidate ensembles, for rules fixed in advance; the test set is not read.

Each candidate is NAME=DIR,DIR,...; every model is run once on the 5,000 validation images and
each candidate is scored as the mean of its members' probabilities, the way `digitrec join`
builds the ensemble that would be bundled.

Usage: python benchmarks/ensemble_candidates.py a=models/ensemble/member-0,models/ensemble/member-1 b=...
"""

import argparse

import numpy as np

from digitrec.artifact import load_model
from digitrec.data import load_dataset, scale
from digitrec.models import predict_proba


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("candidates", nargs="+", metavar="NAME=DIR,DIR,...")
    args = parser.parse_args()
    candidates = dict(spec.split("=", 1) for spec in args.candidates)
    members = {name: dirs.split(",") for name, dirs in candidates.items()}
    data = load_dataset("mnist")
    images, labels = scale(data.val_images), data.val_labels
    probabilities = {d: predict_proba(load_model(d).model, images) for dirs in members.values() for d in dirs}

    def errors(p: np.ndarray) -> int:
        return int((p.argmax(1) != labels).sum())

    for model_dir, p in probabilities.items():
        print(f"member {model_dir:40s} validation errors {errors(p):3d}")
    for name, dirs in members.items():
        mean = np.mean([probabilities[d] for d in dirs], axis=0)
        print(f"candidate {name:8s} {len(dirs):2d} members  validation errors {errors(mean):3d}")


if __name__ == "__main__":
    main()
