"""Every export format of a model: test accuracy, size, latency, throughput and cold start.

Exports MODEL to each format into a scratch folder, then for each: test accuracy (10,000
images), file size, single-image latency (median of 200 calls), batch throughput (images/s at
batch 256), and the whole-process cold start of `digitrec predict one.png --model FILE`
(median of 5). Exits 1 if int8 loses more than 0.1 points or its cold start is over 0.5 s.

Usage: python benchmarks/export_formats.py [--model M]
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from digitrec.data import load_dataset, scale
from digitrec.exporter import export
from digitrec.recognizer import Recognizer
from digitrec.synth import PhotoStyle, render_photo

BIN = Path(sys.executable).parent
OUTS = {"keras": "m.keras", "savedmodel": "saved", "tflite": "f32.tflite", "tflite-int8": "int8.tflite"}


def cold_start(model: Path, image: Path, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(
            [str(BIN / "digitrec"), "predict", str(image), "--model", str(model)],
            check=True,
            capture_output=True,
        )
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="default")
    args = parser.parse_args()
    data = load_dataset("mnist")
    images, labels = scale(data.test_images), data.test_labels
    verdict = 0
    with tempfile.TemporaryDirectory() as scratch:
        image = Path(scratch) / "one.png"
        image.write_bytes(render_photo(images[0], PhotoStyle(jpeg_quality=None)))
        source = Recognizer.load(args.model)
        source_accuracy = float(np.mean(source.predict_proba(images).argmax(1) == labels))
        print(f"source {args.model}: test accuracy {source_accuracy:.4f}")
        for fmt, name in OUTS.items():
            out = Path(scratch) / name
            meta = export(args.model, fmt, out)
            recognizer = Recognizer.load(out)
            single = []
            for i in range(200):
                started = time.perf_counter()
                recognizer.predict_proba(images[i : i + 1])
                single.append(time.perf_counter() - started)
            started = time.perf_counter()
            recognizer.predict_proba(images[:2560])
            throughput = 2560 / (time.perf_counter() - started)
            cold = cold_start(out, image)
            drop = (source_accuracy - meta["test_accuracy"]) * 100
            print(
                f"{fmt:12s} accuracy {meta['test_accuracy']:.4f} (drop {drop:+.2f} points)  "
                f"{meta['bytes'] / 1024:8.0f} KiB  single {statistics.median(single) * 1000:6.2f} ms  "
                f"batch {throughput:8.0f} images/s  cold start {cold:5.2f} s",
                flush=True,
            )
            if fmt == "tflite-int8" and (drop > 0.1 or cold > 0.5):
                verdict = 1
    return verdict


if __name__ == "__main__":
    sys.exit(main())
