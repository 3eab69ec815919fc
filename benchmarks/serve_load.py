"""Load on `digitrec serve`: concurrent clients uploading PNGs to /api/predict, on loopback.

Starts the server on a free loopback port, then CLIENTS clients each send REQUESTS uploads of
MNIST test digits as dark-on-white PNGs (multipart, a new connection per request, as browsers
and scripts mostly do). Prints throughput, latency percentiles, the server's CPU time a request
and errors, then what reading a PNG and running the int8 model cost in-process; exits 1
unless there are no errors, p99 <= 100 ms and >= 300 requests/s.

The clients are non-blocking sockets in one thread, sending requests built beforehand: client
and server share the machine's cores, and 32 threads of `http.client` spent as much CPU a
request as the server did (3 ms), so they measured themselves as much as the server.

Usage: python benchmarks/serve_load.py [--model M] [--clients 32] [--requests 60] [--baseline SRC]

`--baseline SRC` first runs the same load against the server in another checkout's `src` (for
example today's, `git archive HEAD src | tar -x -C /tmp/head`), then this one, and also requires
at least 3× its throughput.
"""

import argparse
import http.client
import io
import os
import selectors
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field

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


def post(port: int, png: bytes) -> bytes:
    """The whole HTTP request that uploads `png` to /api/predict, ready to send."""
    body, kind = multipart(png)
    head = (
        f"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: {kind}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


@dataclass
class Exchange:
    """One request in flight: its bytes, what is sent, what has come back."""

    client: int
    request: bytes
    started: float = field(default_factory=time.perf_counter)
    sent: int = 0
    received: bytearray = field(default_factory=bytearray)
    length: int | None = None  # of the whole response, once its headers are in

    def complete(self) -> bool:
        if self.length is None and (end := self.received.find(b"\r\n\r\n")) >= 0:
            headers = bytes(self.received[:end]).lower().split(b"\r\n")
            sizes = [h.partition(b":")[2] for h in headers if h.startswith(b"content-length:")]
            self.length = end + 4 + int(sizes[0]) if sizes else None
        return self.length is not None and len(self.received) >= self.length

    def status(self) -> str:
        return bytes(self.received[9:12]).decode(errors="replace") or "no response"


def run_clients(port: int, requests: list[bytes], clients: int) -> tuple[list[float], list[str], float]:
    """Every client sends every request, one at a time, each on a new connection; the
    latencies, the errors and the wall time of it all."""
    selector = selectors.DefaultSelector()
    latencies: list[float] = []
    errors: list[str] = []
    left = dict.fromkeys(range(clients), len(requests))

    def open_next(client: int) -> None:
        connection = socket.socket()
        connection.setblocking(False)
        connection.connect_ex(("127.0.0.1", port))
        request = requests[len(requests) - left[client]]
        selector.register(connection, selectors.EVENT_WRITE, Exchange(client, request))

    started = time.perf_counter()
    for client in left:
        open_next(client)
    while selector.get_map():
        for key, events in selector.select(timeout=10) or _stalled():
            connection, exchange = key.fileobj, key.data
            try:
                if events & selectors.EVENT_WRITE:
                    exchange.sent += connection.send(exchange.request[exchange.sent :])  # type: ignore[union-attr]
                    if exchange.sent == len(exchange.request):
                        selector.modify(connection, selectors.EVENT_READ, exchange)
                    continue
                chunk = connection.recv(1 << 16)  # type: ignore[union-attr]
                exchange.received += chunk
                if chunk and not exchange.complete():
                    continue
                if exchange.status() != "200":
                    errors.append(exchange.status())
            except OSError as exc:
                errors.append(repr(exc))
            selector.unregister(connection)
            connection.close()
            latencies.append(time.perf_counter() - exchange.started)
            left[exchange.client] -= 1
            if left[exchange.client]:
                open_next(exchange.client)
    return latencies, errors, time.perf_counter() - started


def _stalled() -> list:
    raise SystemExit("no response from the server for 10 s")


def cpu_seconds(pid: int) -> float:
    """User and system CPU time process `pid` and its workers have used (Linux)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return own + sum(cpu_seconds(child) for child in children(pid))


def children(pid: int) -> list[int]:
    """The processes `pid` started that are still running (Linux)."""
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as listed:
            found += [int(child) for child in listed.read().split()]
    return found


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


def measure(args: argparse.Namespace, src: str | None, label: str) -> tuple[float, float, int]:
    """Serve from `src` (None: this checkout), load it, print one line: rate, p99, errors."""
    [port] = free_ports(1)
    model = ["--model", args.model] if args.model else []
    command = [str(BIN / "python"), "-m", "digitrec", "serve", *model, "--port", str(port)]
    env = {**os.environ, "PYTHONPATH": src} if src else None
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        wait_until_healthy(port, server)
        requests = [post(port, png) for png in png_uploads(args.requests)]
        run_clients(port, requests[:20], 1)  # warm-up: traces, caches
        cpu_before = cpu_seconds(server.pid)
        latencies, errors, elapsed = run_clients(port, requests, args.clients)
        cpu_ms = (cpu_seconds(server.pid) - cpu_before) * 1000 / len(latencies)
    finally:
        server.terminate()
        server.wait(timeout=10)
    ms = np.array(latencies) * 1000
    rate = len(latencies) / elapsed
    p50, p99 = np.percentile(ms, 50), np.percentile(ms, 99)
    print(
        f"{label} ({args.model or 'serve default'}): {args.clients} clients × {args.requests} PNG uploads: "
        f"{rate:.0f} requests/s, p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {ms.max():.1f} ms, "
        f"server CPU {cpu_ms:.2f} ms a request, {len(errors)} errors",
        flush=True,
    )
    return rate, float(p99), len(errors)


def in_process_costs(count: int = 200) -> str:
    """CPU a request spends on its image and on the model, measured here in one thread: of the
    server's CPU a request, the share no change to the request path can remove."""
    from digitrec.preprocess import read
    from digitrec.recognizer import Recognizer

    uploads = png_uploads(count)
    recognizer = Recognizer.load("default-int8")
    digits = [read(png)[0].image for png in uploads[:20]]  # warm-up
    started = time.process_time()
    digits = [read(png)[0].image for png in uploads]
    reading = time.process_time() - started
    for digit in digits[:20]:
        recognizer.predict_proba(digit[None])
    started = time.process_time()
    for digit in digits:
        recognizer.predict_proba(digit[None])
    inference = time.process_time() - started
    return (
        f"in-process CPU a request: reading the PNG {reading * 1000 / count:.2f} ms, "
        f"the int8 model {inference * 1000 / count:.2f} ms"
    )


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
    print(in_process_costs(), flush=True)
    if args.baseline:
        print(f"speed-up: {rate / baseline_rate:.1f}×")
    return 0 if not errors and p99 <= 100 and rate >= floor else 1


if __name__ == "__main__":
    sys.exit(main())
