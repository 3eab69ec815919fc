"""Training step time of a model in float32 and in mixed bfloat16, alternating, on this machine.

Each round fits the same number of steps of the full trainer (pixel scaling, augmentation, the
model, the optimizer) once per precision, in alternating order, so a shared machine's load falls
on both alike; the median ms/step and the ratio are reported.

Usage: python benchmarks/precision_speed.py [--model cnn] [--rounds 5] [--steps 40]
"""

import argparse
import statistics
import time

import numpy as np

from digitrec.data import load_dataset
from digitrec.fitting import compiled_trainer, training_arrays
from digitrec.recipes import recipe

PRECISIONS = ("float32", "mixed_bfloat16")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args()
    batch_size = recipe(args.model).batch_size
    x, y = training_arrays(recipe(args.model), load_dataset("mnist"))
    x, y = x[: batch_size * args.steps], y[: batch_size * args.steps]
    trainers = {}
    for precision in PRECISIONS:
        trainers[precision] = compiled_trainer(recipe(args.model, precision=precision), args.steps)
        trainers[precision].fit(x, y, batch_size=batch_size, verbose=0)  # tracing
    times: dict[str, list[float]] = {p: [] for p in PRECISIONS}
    for round_ in range(args.rounds):
        for precision in PRECISIONS if round_ % 2 == 0 else PRECISIONS[::-1]:
            started = time.perf_counter()
            trainers[precision].fit(x, y, batch_size=batch_size, verbose=0)
            times[precision].append((time.perf_counter() - started) / args.steps * 1000)
    medians = {p: statistics.median(t) for p, t in times.items()}
    for precision, ms in medians.items():
        rounds = np.round(times[precision], 1).tolist()
        print(f"{args.model} {precision:15s} {ms:6.1f} ms/step  (rounds: {rounds})")
    print(f"mixed_bfloat16 / float32 step time: {medians['mixed_bfloat16'] / medians['float32']:.2f}")


if __name__ == "__main__":
    main()
