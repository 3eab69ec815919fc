"""Replay issue 30's attacks on `digitrec serve` and print what each did to the server.

Starts `digitrec serve` (its defaults: the bundled model on LiteRT int8) on a free loopback port,
then runs each attack while one client polls `/healthz` and another sends honest PNG uploads.
Prints a table: attack, statuses answered, wall time, the slowest `/healthz`, the honest
requests' p99, and the server's resident memory before, at its peak and after. Exits 1 if
`/healthz` ever took 100 ms or more, honest p99 went over 500 ms, memory passed 1.5 GB or any
answer was a 5xx. Loopback only; every loop is bounded.

Usage: python benchmarks/serve_attack.py
"""

import contextlib
import http.client
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from common import BIN, free_ports
from serve_load import children, multipart, png_uploads, wait_until_healthy

PORT = 0
DECLARED_30_MB = b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 31457280\r\n\r\n"


def png(width: int, height: int, rows: bytes = b"") -> bytes:
    """A PNG declaring `width` × `height` grey pixels; `rows` its compressed data (default: almost none)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = rows or zlib.compress(b"\0" * 99)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def black_png(width: int, height: int) -> bytes:
    """A whole, decodable black PNG: a few tens of KB declaring megapixels."""
    return png(width, height, zlib.compress(b"\0" * ((width + 1) * height), 9))


def rss_mb(pid: int) -> float:
    """Resident memory of the server and its workers, in MB."""
    with open(f"/proc/{pid}/status") as status:
        own = next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmRSS:"))
    return own + sum(rss_mb(child) for child in children(pid))


def post(path: str, body: bytes, kind: str, headers: dict | None = None, timeout: float = 60) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=timeout)
    try:
        connection.request("POST", path, body, {"Content-Type": kind, **(headers or {})})
        return connection.getresponse().status
    except OSError:
        return 0  # the server closed the connection (as it does once a body passes the limit)
    finally:
        connection.close()


def upload(image: bytes) -> int:
    return post("/api/predict", *multipart(image))


def concurrently(count: int, function, *args) -> list[int]:
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda _: function(*args), range(count)))


def raw(request: bytes, body_chunks=(), read: bool = True) -> int:
    """Send `request` then chunks (stopping when the server stops reading); the status or 0."""
    connection = socket.create_connection(("127.0.0.1", PORT), timeout=30)
    try:
        connection.sendall(request)
        for chunk in body_chunks:
            connection.sendall(chunk)
    except OSError:
        pass
    answer = b""
    with contextlib.suppress(OSError):
        while read and (part := connection.recv(65536)):
            answer += part
    connection.close()
    return int(answer[9:12]) if answer.startswith(b"HTTP/1.1 ") else 0


def chunked(path: str, kind: str, total_mb: int, first: bytes = b"") -> int:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {kind}\r\nTransfer-Encoding: chunked\r\n"
    )
    head += "\r\n"
    piece = b"%x\r\n" % (1 << 20) + b"0" * (1 << 20) + b"\r\n"
    chunks = [b"%x\r\n" % len(first) + first + b"\r\n"] if first else []
    return raw(head.encode(), chunks + [piece] * total_mb)  # a list of one shared bytes object


def slowloris(count: int) -> list[int]:
    """`count` connections that send part of their headers and then nothing; seconds until closed."""
    sockets = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", PORT), timeout=30)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        sockets.append(s)
    started, closed = time.perf_counter(), []
    for s in sockets:
        with contextlib.suppress(OSError):
            s.recv(1024)
        closed.append(time.perf_counter() - started)
        s.close()
    return [round(max(closed))]


def trickle() -> list[int]:
    head = b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
    head += b"Content-Length: 100000\r\n\r\n"

    def drip():
        for _ in range(150):  # a byte every 0.1 s: 15 s at most
            yield b"\0"
            time.sleep(0.1)

    return [raw(head, drip())]


def image_file(kind: str) -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("L", (32, 32), 255).save(out, kind)
    return out.getvalue()


def attacks(pngs: list[bytes]) -> list[tuple[str, object]]:
    big, strip = black_png(6000, 6000), png(39_999_999, 1)
    multipart_start = b'--xyz\r\nContent-Disposition: form-data; name="image"; filename="b.png"\r\n\r\n'
    return [
        (f"8 × {len(big) // 1024} KB PNG declaring 6000×6000", lambda: concurrently(8, upload, big)),
        ("8 × PNG declaring 39,999,999×1", lambda: concurrently(8, upload, strip)),
        ("3 × PNG declaring 1×39,999,999", lambda: concurrently(3, upload, png(1, 39_999_999))),
        (
            "chunked multipart, 1 GiB offered",
            lambda: [chunked("/api/predict", "multipart/form-data; boundary=xyz", 1024, multipart_start)],
        ),
        (
            "chunked JSON, 62 MB offered",
            lambda: [chunked("/v1/models/digitrec:predict", "application/json", 62)],
        ),
        ("Content-Length 30 MB", lambda: [raw(DECLARED_30_MB, [b"\0" * 65536])]),
        ("200 connections never ending their headers", lambda: slowloris(200)),
        ("a body trickled at 10 bytes/s", trickle),
        ("ICO, PPM, TGA, EPS uploads", lambda: [upload(image_file(k)) for k in ("ICO", "PPM", "TGA")]),
        (
            'TF Serving "0.5" and true',
            lambda: [
                post("/v1/models/digitrec:predict", b'{"instances":[[[' + v + b"]]]}", "application/json")
                for v in (b'"0.5"', b"true")
            ],
        ),
        (
            "Host: rebound.example",
            lambda: [post("/api/predict", pngs[0], "image/png", {"Host": "rebound.example"})],
        ),
    ]


def watch(pid: int, attack, pngs: list[bytes]) -> dict:
    """Run `attack` while polling /healthz, sending honest uploads and sampling RSS."""
    done, health, honest, peak = threading.Event(), [], [], [rss_mb(pid)]

    def poll_health():
        while not done.is_set():
            started = time.perf_counter()
            connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=10)
            connection.request("GET", "/healthz")
            connection.getresponse().read()
            connection.close()
            health.append(time.perf_counter() - started)
            peak.append(rss_mb(pid))
            time.sleep(0.02)

    def honest_client():
        for image in pngs * 100:
            if done.is_set():
                return
            started = time.perf_counter()
            assert upload(image) == 200
            honest.append(time.perf_counter() - started)
            time.sleep(0.01)

    helpers = [threading.Thread(target=poll_health), threading.Thread(target=honest_client)]
    before = rss_mb(pid)
    for helper in helpers:
        helper.start()
    started = time.perf_counter()
    statuses = attack()
    elapsed = time.perf_counter() - started
    done.set()
    for helper in helpers:
        helper.join()
    time.sleep(0.5)
    return {
        "statuses": statuses,
        "time_s": elapsed,
        "healthz_max_ms": max(health) * 1000,
        "honest_p99_ms": float(np.percentile(honest, 99)) * 1000 if honest else 0.0,
        "rss": (before, max(peak), rss_mb(pid)),
    }


def main() -> int:
    global PORT
    [PORT] = free_ports(1)
    command = [str(BIN / "digitrec"), "serve", "--port", str(PORT)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    failed = False
    try:
        wait_until_healthy(PORT, server)
        pngs = png_uploads(20)
        concurrently(4, lambda: [upload(p) for p in pngs])  # warm-up
        print("| attack | statuses | time | slowest /healthz | honest p99 | RSS before → peak → after |")
        print("|---|---|---|---|---|---|")
        for name, attack in attacks(pngs):
            row = watch(server.pid, attack, pngs)
            codes = ", ".join(
                f"{c}×{n}" for c, n in sorted({s: row["statuses"].count(s) for s in row["statuses"]}.items())
            )
            if "connections" in name:
                codes = f"all closed by the server after {row['statuses'][0]} s"
            before, peak, after = row["rss"]
            print(
                f"| {name} | {codes} | {row['time_s']:.1f} s | {row['healthz_max_ms']:.0f} ms | "
                f"{row['honest_p99_ms']:.0f} ms | {before:.0f} → {peak:.0f} → {after:.0f} MB |",
                flush=True,
            )
            failed |= row["healthz_max_ms"] >= 100 or row["honest_p99_ms"] > 500 or peak > 1536
            failed |= any(isinstance(s, int) and s >= 500 for s in row["statuses"])
    finally:
        server.terminate()
        _, err = server.communicate(timeout=10)
    if "Traceback" in err.decode():
        print(err.decode()[-2000:])
        failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
