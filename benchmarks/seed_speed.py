"""Whole-command time of `digitrec train --recipe softmax` against the tutorial's TF1 program.

Runs the two commands alternately, ROUNDS times each, on the same machine in the same minutes,
and compares medians. Prints one line per run and a verdict; exits 1 if digitrec is slower or
below 90% test accuracy.

Usage: python benchmarks/seed_speed.py [ROUNDS]   (default 5)
"""

import json
import re
import statistics
import sys
import tempfile

from common import BIN, timed


def main() -> int:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    seed_times, ours_times, ours_accuracy = [], [], []
    with tempfile.TemporaryDirectory() as scratch:
        for i in range(rounds):
            seconds, out = timed([sys.executable, "benchmarks/seed_tf1.py"])
            seed_accuracy = float(re.findall(r"test accuracy ([0-9.]+);", out)[-1])
            seed_times.append(seconds)
            command = [
                str(BIN / "digitrec"),
                "train",
                "--recipe",
                "softmax",
                "--epochs",
                "10",
                "--batch-size",
                "100",
                "--lr",
                "0.01",
                "--seed",
                "0",
                "--out",
                f"{scratch}/{i}",
                "--json",
            ]
            seconds, out = timed(command)
            ours_times.append(seconds)
            ours_accuracy.append(json.loads(out.strip().splitlines()[-1])["accuracy"])
            print(
                f"round {i + 1}: seed {seed_times[-1]:.2f} s ({seed_accuracy:.4f}), "
                f"digitrec {ours_times[-1]:.2f} s ({ours_accuracy[-1]:.4f})"
            )
    seed, ours = statistics.median(seed_times), statistics.median(ours_times)
    ratio = ours / seed
    print(
        f"median whole command: seed TF1 {seed:.2f} s, digitrec {ours:.2f} s, ratio {ratio:.2f}; "
        f"digitrec accuracy {min(ours_accuracy):.4f}"
    )
    return 0 if ratio <= 1.0 and min(ours_accuracy) >= 0.90 else 1


if __name__ == "__main__":
    sys.exit(main())
