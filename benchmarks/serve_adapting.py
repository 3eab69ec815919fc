"""/healthz while the server adapts a profile in the background (issue 26).

Starts `digitrec serve` with its own data folder, sends `adapt_every` (20) corrections of one
profile through POST /api/feedback (MNIST training digits, relabelled by nothing: the right
labels), which starts an adaptation, then polls /healthz every 50 ms until the profile's
adapted model appears, and prints the latency percentiles and the slowest; exits 1 if any poll
took 100 ms or more, or no model appeared within the time limit.

Usage: python benchmarks/serve_adapting.py [--limit-s 300]
"""

import argparse
import os
import select
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from digitrec.data import load_dataset, scale

EVERY = 20  # the server's default adapt_every


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--limit-s", type=float, default=300.0)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="digitrec-adapting-"))
    env = {**os.environ, "DIGITREC_HOME": str(home)}
    command = [sys.executable, "-m", "digitrec", "serve", "--port", "0"]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        ready, _, _ = select.select([server.stdout], [], [], 120)
        if not ready:
            raise SystemExit("the server did not start in 120 s")
        url = server.stdout.readline().split(" on ")[1].split()[0]  # type: ignore[union-attr]
        mnist = load_dataset("mnist", progress=False)
        with httpx.Client(base_url=url, timeout=10) as client:
            for image, label in zip(scale(mnist.train_images[:EVERY]), mnist.train_labels, strict=False):
                kept = client.post(
                    "/api/feedback", json={"image": image.tolist(), "label": int(label)}
                ).json()
            if not kept["adapting"]:
                raise SystemExit(f"no adaptation started after {EVERY} corrections: {kept}")
            model = home / "profiles" / "me" / "model-int8.tflite.json"  # the sidecar: written last
            latencies, started = [], time.perf_counter()
            while not model.exists() and time.perf_counter() - started < args.limit_s:
                before = time.perf_counter()
                client.get("/healthz")
                latencies.append((time.perf_counter() - before) * 1000)
                time.sleep(0.05)
            adapted = model.exists()
            seconds = time.perf_counter() - started
            reply = client.post(
                "/api/predict?profile=me",
                content=_png(mnist.test_images[0]),
                headers={"content-type": "image/png"},
            ).json()
            answered = reply.get("model", f"no model: {reply}")
    finally:
        server.terminate()
        server.wait(timeout=30)
    ms = np.array(latencies)
    print(
        f"adaptation in the background: {'done' if adapted else 'NOT done'} in {seconds:.0f} s; "
        f"/healthz polled {len(ms)} times: p50 {np.percentile(ms, 50):.1f} ms, p99 "
        f"{np.percentile(ms, 99):.1f} ms, slowest {ms.max():.1f} ms; then /api/predict?profile=me "
        f"answered with {answered}"
    )
    return 0 if adapted and ms.max() < 100 and answered == "profile:me" else 1


def _png(image: np.ndarray) -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(255 - image, "L").save(out, "PNG")
    return out.getvalue()


if __name__ == "__main__":
    sys.exit(main())
