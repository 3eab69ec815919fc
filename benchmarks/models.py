"""Per-epoch training time and peak memory of every model in the zoo, on this machine.

Each model trains for two epochs (`digitrec train --recipe M --epochs 2`) in its own process;
the second epoch's seconds (from `history.json`, so without the first epoch's tracing) and the
process's peak resident memory are reported, with the parameter count.

Usage: python benchmarks/models.py [MODEL ...]   (default: every model)
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS = ["softmax", "mlp", "lenet5", "fast", "cnn"]


def measure(model: str, out: Path) -> dict:
    command = [
        str(Path(sys.executable).parent / "digitrec"),
        "train",
        "--recipe",
        model,
        "--epochs",
        "2",
        "--out",
        str(out),
        "--json",
    ]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    stdout = process.stdout.read() if process.stdout else b""
    _, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        raise SystemExit(f"{model}: digitrec train failed with status {status}")
    history = json.loads((out / "history.json").read_text())
    params = json.loads((out / "metadata.json").read_text())["parameters"]
    return {
        "model": model,
        "epoch_seconds": history[-1]["seconds"],
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "test_accuracy_after_2_epochs": json.loads(stdout.decode().strip().splitlines()[-1])["accuracy"],
        "parameters": params,
    }


def main() -> None:
    models = sys.argv[1:] or MODELS
    with tempfile.TemporaryDirectory() as scratch:
        for model in models:
            row = measure(model, Path(scratch) / model)
            print(
                f"{row['model']:8s} {row['parameters']:>8,d} params  {row['epoch_seconds']:6.1f} s/epoch  "
                f"peak {row['peak_rss_mb']:6.0f} MB  "
                f"test {row['test_accuracy_after_2_epochs']:.4f} after 2 epochs",
                flush=True,
            )


if __name__ == "__main__":
    main()
