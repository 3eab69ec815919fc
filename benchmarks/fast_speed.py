"""Whole-command time of `digitrec train --recipe fast` against the Keras example's run to 99%.

Runs `benchmarks/keras_example.py` (the Keras "Simple MNIST convnet" until its first epoch at
99.0% test accuracy) and `digitrec train --recipe fast --seed 0 --out D` one after the other,
ROUNDS times, on the same machine, and compares medians of the whole commands. Exits 1 unless
`fast` reaches 99.0% in at most a quarter of the baseline's time.

Usage: python benchmarks/fast_speed.py [ROUNDS]   (default 1)
"""

import json
import statistics
import sys
import tempfile

from common import BIN, timed


def main() -> int:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    baseline_times, fast_times, accuracies = [], [], []
    with tempfile.TemporaryDirectory() as scratch:
        for i in range(rounds):
            seconds, out = timed([sys.executable, "benchmarks/keras_example.py"])
            baseline_times.append(seconds)
            print(
                f"round {i + 1}: keras example {seconds:.1f} s ({out.strip().splitlines()[-1]})", flush=True
            )
            command = [
                str(BIN / "digitrec"),
                "train",
                "--recipe",
                "fast",
                "--seed",
                "0",
                "--out",
                f"{scratch}/{i}",
                "--json",
            ]
            seconds, out = timed(command)
            fast_times.append(seconds)
            accuracies.append(json.loads(out.strip().splitlines()[-1])["accuracy"])
            print(
                f"round {i + 1}: digitrec fast {seconds:.1f} s (test accuracy {accuracies[-1]:.4f})",
                flush=True,
            )
    baseline, fast = statistics.median(baseline_times), statistics.median(fast_times)
    print(
        f"median whole command: keras example to 99% {baseline:.1f} s, digitrec fast {fast:.1f} s, "
        f"ratio {fast / baseline:.3f} (target <= 0.25); fast accuracy {min(accuracies):.4f}"
    )
    return 0 if fast / baseline <= 0.25 and min(accuracies) >= 0.99 else 1


if __name__ == "__main__":
    sys.exit(main())
