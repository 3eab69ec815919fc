"""Load on `digitrec serve`: concurrent clients uploading PNGs to /api/predict, on loopback.

Starts the server on a free loopback port, then CLIENTS threads each send REQUESTS uploads of
MNIST test digits as dark-on-white PNGs (multipart, a new connection per request, as browsers
and scripts mostly do). Prints throughput, latency percentiles and errors; exits 1 unless there
are no errors, p99 <= 100 ms and >= 300 requests/s.

Usage: python benchmarks/serve_load.py [--model M] [--clients 32] [--requests 60] [--baseline SRC]

`--baseline SRC` first runs the same load against the server in another checkout's `src` (for
example today's, `git archive HEAD src | tar -x -C /tmp/head`), then this one, and also requires
at least 3× its throughput.
"""

import argparse
import http.client
import io
import os
import subprocess
import sys
import threading
import time
import uuid

import numpy as np
from common import BIN, free_ports
from PIL import Image

from digitrec.data import load_dataset


def png_uploads(count: int) -> list[bytes]:
    images = load_dataset("mnist").test_images[:count]
    bodies = []
    for image in images:
        out = io.BytesIO()
        Image.fromarray(255 - image, "L").save(out, "PNG")
        bodies.append(out.getvalue())
    return bodies


def multipart(png: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="d.png"\r\n'
            f"Content-Type: image/png\r\n\r\n"
        ).encode()
        + png
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def client(port: int, uploads: list[bytes], latencies: list[float], errors: list[str]) -> None:
    for png in uploads:
        body, kind = multipart(png)
        started = time.perf_counter()
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            connection.request("POST", "/api/predict", body, {"Content-Type": kind})
            response = connection.getresponse()
            response.read()
            connection.close()
            if response.status != 200:
                errors.append(str(response.status))
        except OSError as exc:
            errors.append(repr(exc))
        latencies.append(time.perf_counter() - started)


def wait_until_healthy(port: int, server: subprocess.Popen, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            http.client.HTTPConnection("127.0.0.1", port, timeout=1).request("GET", "/healthz")
            return
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                reason = server.stderr.read().decode() if server.stderr else ""
                raise SystemExit(f"the server did not start: {reason}") from None
            time.sleep(0.2)


def run_clients(port: int, uploads: list[bytes], clients: int) -> tuple[list[float], list[str], float]:
    """Every client sends every upload; the latencies, the errors and the wall time of it all."""
    latencies: list[float] = []
    errors: list[str] = []
    threads = [
        threading.Thread(target=client, args=(port, uploads, latencies, errors)) for _ in range(clients)
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, errors, time.perf_counter() - started


def measure(args: argparse.Namespace, src: str | None, label: str) -> tuple[float, float, int]:
    """Serve from `src` (None: this checkout), load it, print one line: rate, p99, errors."""
    [port] = free_ports(1)
    model = ["--model", args.model] if args.model else []
    command = [str(BIN / "python"), "-m", "digitrec", "serve", *model, "--port", str(port)]
    env = {**os.environ, "PYTHONPATH": src} if src else None
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        wait_until_healthy(port, server)
        uploads = png_uploads(args.requests)
        for png in uploads[:20]:  # warm-up: traces, caches
            client(port, [png], [], [])
        latencies, errors, elapsed = run_clients(port, uploads, args.clients)
    finally:
        server.terminate()
        server.wait(timeout=10)
    ms = np.array(latencies) * 1000
    rate = len(latencies) / elapsed
    p50, p99 = np.percentile(ms, 50), np.percentile(ms, 99)
    print(
        f"{label} ({args.model or 'serve default'}): {args.clients} clients × {args.requests} PNG uploads: "
        f"{rate:.0f} requests/s, p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {ms.max():.1f} ms, "
        f"{len(errors)} errors",
        flush=True,
    )
    return rate, float(p99), len(errors)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", help="default: serve's own default model")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--baseline", metavar="SRC", help="another checkout's src/ to measure first")
    args = parser.parse_args()
    floor = 300.0
    if args.baseline:
        baseline_rate, _, _ = measure(args, args.baseline, "baseline")
        floor = 3 * baseline_rate
    rate, p99, errors = measure(args, None, "this checkout")
    if args.baseline:
        print(f"speed-up: {rate / baseline_rate:.1f}×")
    return 0 if not errors and p99 <= 100 and rate >= floor else 1


if __name__ == "__main__":
    sys.exit(main())
