"""Speed-up of two multi-worker processes over one process, on this machine, for `mlp`.

Times `digitrec train --recipe mlp --epochs 2` as one ordinary process, then as two workers on
loopback joined by TF_CONFIG (both started together; the time is until both exit), and prints
the whole-command times, the ratio and both test accuracies.

Usage: python benchmarks/two_workers.py
"""

import json
import os
import subprocess
import tempfile
import time

from common import BIN, free_ports

COMMAND = [str(BIN / "digitrec"), "train", "--recipe", "mlp", "--epochs", "2", "--json"]


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        single = subprocess.run(
            [*COMMAND, "--out", f"{scratch}/one"], capture_output=True, text=True, check=True
        )
        one_seconds = time.perf_counter() - started
        one_accuracy = json.loads(single.stdout.strip().splitlines()[-1])["accuracy"]

        ports = free_ports(2)
        cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
        started = time.perf_counter()
        workers = [
            subprocess.Popen(
                [*COMMAND, "--strategy", "multi-worker", "--out", f"{scratch}/two"],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                env={
                    **os.environ,
                    "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}),
                },
            )
            for i in range(2)
        ]
        outputs = [w.communicate()[0] for w in workers]
        two_seconds = time.perf_counter() - started
        two_accuracy = json.loads(outputs[0].strip().splitlines()[-1])["accuracy"]
    print(
        f"mlp, 2 epochs: one process {one_seconds:.1f} s (test {one_accuracy:.4f}); two workers "
        f"{two_seconds:.1f} s (test {two_accuracy:.4f}); speed-up {one_seconds / two_seconds:.2f}×"
    )


if __name__ == "__main__":
    main()
