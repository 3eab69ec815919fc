"""Faults and safety: interrupted downloads and exports, a full disk, untrusted models, soak, and
hostile clients of the server."""

import contextlib
import dataclasses
import errno
import functools
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time

import httpx
import keras
import numpy as np
import pytest

from digitrec import data
from digitrec.checkpoints import CHECKPOINT_INDEX, EpochCheckpoint, read_checkpoint
from digitrec.errors import DataError, ModelError
from digitrec.files import sha256_of
from digitrec.recipes import recipe
from digitrec.recognizer import Recognizer
from digitrec.server import ServeConfig


class _CutOffHandler(http.server.BaseHTTPRequestHandler):
    """Promises a large file, sends a little of it, then drops the connection."""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "1000000")
        self.end_headers()
        self.wfile.write(b"\x1f\x8b" + b"\0" * 5000)
        self.wfile.flush()
        self.connection.shutdown(2)

    def log_message(self, format, *args):
        pass


def test_an_interrupted_download_leaves_no_file_and_a_rerun_starts_clean(tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _CutOffHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        spec = dataclasses.replace(
            data.DATASETS["mnist"], mirrors=(f"http://127.0.0.1:{server.server_address[1]}/",)
        )
        with pytest.raises(DataError, match="could not download train-images"):
            data.download(spec, tmp_path / "cache", progress=False)
    finally:
        server.shutdown()
        server.server_close()
    assert list((tmp_path / "cache").iterdir()) == []


def test_a_failed_export_leaves_no_output(tiny_model_dir, tmp_path, monkeypatch):
    from digitrec import exporter as export_module

    def broken(model, representative):
        raise RuntimeError("killed during conversion")

    monkeypatch.setattr(export_module, "_to_tflite", broken)
    with pytest.raises(RuntimeError):
        export_module.export(tiny_model_dir, "tflite", tmp_path / "m.tflite")
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_during_a_checkpoint_keeps_the_previous_one(tmp_path):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    history: list[dict] = []
    checkpoint = EpochCheckpoint(recipe("mlp"), tmp_path, history)
    checkpoint.set_model(model)
    checkpoint.on_epoch_end(0)
    before = read_checkpoint(tmp_path)

    def no_space(path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    model.save = no_space  # type: ignore[method-assign]
    with pytest.raises(OSError, match="No space left"):
        checkpoint.on_epoch_end(1)
    assert read_checkpoint(tmp_path) == before and (tmp_path / before["file"]).is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == [CHECKPOINT_INDEX, before["file"]]


def test_a_model_with_code_in_it_is_refused(tmp_path):
    inputs = keras.Input((28, 28))
    outputs = keras.layers.Lambda(lambda x: keras.ops.ones((1, 10)) / 10)(inputs)
    keras.Model(inputs, outputs).save(tmp_path / "lambda.keras")
    with pytest.raises(ModelError, match="not a loadable Keras model"):
        Recognizer.load(tmp_path / "lambda.keras")


def test_the_server_listens_on_loopback_unless_told_otherwise():
    assert ServeConfig().host == "127.0.0.1"


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_a_soak_of_thousands_of_requests_keeps_memory_flat(live_server):
    png = _png_of_a_digit()
    with httpx.Client(base_url=live_server) as client:

        def burst(count: int) -> None:
            for i in range(count):
                if i % 2:
                    response = client.post("/api/predict", files={"image": ("d.png", png, "image/png")})
                else:
                    response = client.post(
                        "/v1/models/digitrec:predict", json={"instances": [np.zeros((28, 28)).tolist()]}
                    )
                assert response.status_code == 200

        burst(300)  # warm-up: caches, traces, allocator pools
        before = _rss_mb()
        burst(1500)
        growth = _rss_mb() - before
    assert growth < 30, f"RSS grew {growth:.0f} MB over 1,500 requests"


@functools.cache
def _png_of_a_digit() -> bytes:
    import io

    from PIL import Image

    from .conftest import MNIST_DIR

    image = 255 - data.load_dataset("mnist", MNIST_DIR).test_images[0]
    out = io.BytesIO()
    Image.fromarray(image).save(out, "PNG")
    return out.getvalue()


class _SlowHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files a kilobyte at a time, slowly, so a download can be killed in the middle."""

    slow = True

    def copyfile(self, source, outputfile):
        while chunk := source.read(1024):
            outputfile.write(chunk)
            if self.slow:
                time.sleep(0.01)

    def log_message(self, format, *args):
        pass


def test_a_download_killed_with_sigkill_leaves_no_file_and_a_rerun_completes(tmp_path):
    www = tmp_path / "www"
    www.mkdir()
    rng = np.random.default_rng(0)
    data.write_idx(www / "train-images-idx3-ubyte.gz", rng.integers(0, 255, (400, 28, 28), dtype=np.uint8))
    for name in ("train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        data.write_idx(www / name, np.zeros(3, np.uint8))
    digests = {p.name: sha256_of(p) for p in www.iterdir()}
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_SlowHandler, directory=str(www))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    mirror = f"http://127.0.0.1:{server.server_address[1]}/"
    script = (
        "import dataclasses, sys, json; from pathlib import Path; from digitrec import data; "
        f"spec = dataclasses.replace(data.DATASETS['mnist'], mirrors=({mirror!r},), "
        f"sha256=json.loads({json.dumps(digests)!r})); "
        f"data.download(spec, Path({str(tmp_path / 'cache')!r}), progress=False)"
    )
    try:
        process = subprocess.Popen([sys.executable, "-c", script])
        deadline = time.monotonic() + 60
        while not list((tmp_path / "cache").glob(".train-images*.part*")):
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.02)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        assert not (tmp_path / "cache" / "train-images-idx3-ubyte.gz").exists()
        _SlowHandler.slow = False
        subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    finally:
        _SlowHandler.slow = True
        server.shutdown()
        server.server_close()
    for name, digest in digests.items():
        assert sha256_of(tmp_path / "cache" / name) == digest


def test_an_export_killed_with_sigkill_leaves_no_output_and_a_rerun_completes(tiny_model_dir, tmp_path):
    out = tmp_path / "saved"
    command = [
        sys.executable,
        "-m",
        "digitrec",
        "export",
        "--model",
        str(tiny_model_dir),
        "--format",
        "savedmodel",
        "--out",
        str(out),
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".saved.*.part")):
        assert time.monotonic() < deadline and process.poll() is None, (
            "the export ended before it could be killed"
        )
        time.sleep(0.005)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not out.exists()
    subprocess.run(command, check=True, capture_output=True, timeout=300)
    assert (out / "saved_model.pb").is_file() and (tmp_path / "saved.json").is_file()


# Hostile clients (issue 30), against `digitrec serve`'s own settings on the LiteRT default, with
# short time limits (header 1 s, request 3 s) and a 300 MB work budget. docs/RELIABILITY.md.


def _zeros_png(width: int, height: int) -> bytes:
    """A real, fully decodable PNG of `width` × `height` black pixels: a few KB declaring megapixels."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    rows = zlib.compress(b"\0" * ((width + 1) * height), 9)
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


class _RSS:
    """The peak resident memory of this process (the server runs in it) while the block runs."""

    def __enter__(self):
        self.before = self.peak = _rss_mb()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self) -> None:
        while not self.stop.wait(0.02):
            self.peak = max(self.peak, _rss_mb())

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()


def _healthz_while(url: str, busy: threading.Thread) -> list[float]:
    latencies = []
    with httpx.Client(base_url=url, timeout=10) as client:
        while busy.is_alive() and len(latencies) < 500:
            started = time.perf_counter()
            assert client.get("/healthz").status_code == 200
            latencies.append(time.perf_counter() - started)
            time.sleep(0.02)
    return latencies


def test_eight_small_files_declaring_16_megapixels_stall_nothing_and_memory_stays_in_budget(litert_server):
    bomb = _zeros_png(4000, 4000)  # 16 KB on the wire; decoded off the loop, one at a time
    statuses: list[int] = []

    def attack() -> None:
        def one(_) -> int:
            files = {"image": ("b.png", bomb, "image/png")}
            return httpx.post(f"{litert_server}/api/predict", files=files, timeout=30).status_code

        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(8) as pool:
            statuses.extend(pool.map(one, range(8)))

    with _RSS() as rss:
        attacker = threading.Thread(target=attack)
        attacker.start()
        latencies = _healthz_while(litert_server, attacker)
        attacker.join()
    assert len(bomb) < 20_000 and set(statuses) <= {200, 408} and 200 in statuses, statuses
    # The server shares this process (and its GIL) with the attacking threads and the machine with
    # other tests; benchmarks/serve_attack.py measures it in its own process (docs/RELIABILITY.md).
    assert max(latencies) < 0.5, f"/healthz took {max(latencies) * 1000:.0f} ms during the attack"
    assert rss.peak - rss.before < 450, f"RSS rose {rss.peak - rss.before:.0f} MB"


@pytest.mark.parametrize("size", [(39_999_999, 1), (1, 39_999_999), (20_000, 1_000), (6_000, 100)])
def test_a_declared_size_over_the_pixel_budget_is_refused_from_the_header(litert_server, size):
    from .conftest import png_header

    with _RSS() as rss:
        response = httpx.post(f"{litert_server}/api/predict", files={"image": ("b.png", png_header(*size))})
    assert response.status_code == 400 and "pixel limit" in response.json()["error"]
    assert rss.peak - rss.before < 50


def _raw(url: str):
    import socket

    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10), f"{host}:{port}"


def _chunked_until_cut_off(url: str, path: str, kind: str, limit_mb: int = 40) -> tuple[bytes, int]:
    """POST a chunked body of up to `limit_mb` MB (a stand-in for 1 GiB); the answer and bytes sent."""
    connection, host = _raw(url)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {kind}\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    part = b'--xyz\r\nContent-Disposition: form-data; name="image"; filename="b.png"\r\n\r\n'
    first = part if kind.startswith("multipart") else b"[" * 10  # a valid start: the parser reads on
    connection.sendall(head.encode() + b"%x\r\n" % len(first) + first + b"\r\n")
    chunk, sent = b"%x\r\n" % (256 * 1024) + b"0" * (256 * 1024) + b"\r\n", 0
    try:
        while sent < limit_mb * 1024 * 1024:
            connection.sendall(chunk)
            sent += 256 * 1024
    except OSError:
        pass  # the server answered and closed: the rest is never read
    connection.settimeout(10)
    answer = b""
    with contextlib.suppress(OSError):
        while part := connection.recv(65536):
            answer += part
    connection.close()
    return answer, sent


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/api/predict", "multipart/form-data; boundary=xyz"),
        ("/api/predict", "image/png"),
        ("/v1/models/digitrec:predict", "application/json"),
    ],
)
def test_a_chunked_body_is_cut_off_at_10_mb_on_every_route_that_reads_one(litert_server, path, kind):
    answer, sent = _chunked_until_cut_off(litert_server, path, kind)
    assert answer.startswith(b"HTTP/1.1 413 ") and b"10,485,760-byte limit" in answer, answer[:200]
    assert sent < 20 * 1024 * 1024, f"{sent:,} bytes went in before the server stopped reading"


def test_connections_that_never_finish_their_headers_are_closed(litert_server):
    connections = []
    for request in (b"", b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n", b"GET / HTTP/1.1\r\nX-a: "):
        connection, _ = _raw(litert_server)
        connection.sendall(request)
        connections.append(connection)
    started = time.perf_counter()
    for connection in connections:
        assert connection.recv(1024) == b""  # closed by the server; the socket's own timeout is 10 s
        connection.close()
    assert time.perf_counter() - started < 3
    assert httpx.get(f"{litert_server}/healthz").status_code == 200


def test_a_keep_alive_connection_that_then_trickles_headers_is_closed(litert_server):
    connection, host = _raw(litert_server)
    connection.sendall(f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    answer = b""
    while not answer.endswith(b"}"):
        answer += connection.recv(4096)
    assert answer.startswith(b"HTTP/1.1 200")
    started = time.perf_counter()
    for _ in range(20):  # a byte every 0.1 s, never the end of the headers
        try:
            connection.sendall(b"G")
        except OSError:
            break
        time.sleep(0.1)
    connection.settimeout(5)
    with contextlib.suppress(OSError):
        assert connection.recv(1024) == b""
    connection.close()
    assert time.perf_counter() - started < 3


def test_a_body_trickled_past_the_request_limit_gets_a_408_and_the_connection_closes(litert_server):
    connection, host = _raw(litert_server)
    head = f"POST /api/predict HTTP/1.1\r\nHost: {host}\r\nContent-Type: image/png\r\nContent-Length: 999\r\n"
    connection.sendall(head.encode() + b"\r\n")
    answer, started = b"", time.perf_counter()
    connection.settimeout(0.2)
    while time.perf_counter() - started < 8:
        with contextlib.suppress(OSError):
            connection.sendall(b"\0")
        try:
            part = connection.recv(4096)
        except TimeoutError:
            continue
        except OSError:
            break
        if not part:
            break
        answer += part
    connection.close()
    assert answer.startswith(b"HTTP/1.1 408 ") and b"connection: close" in answer.lower()
    assert time.perf_counter() - started < 7


def _writes_a_file_saved_model(folder, marker):
    import tensorflow as tf

    class Writer(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 28, 28], tf.float32, name="pixels")])
        def serve(self, pixels):
            tf.io.write_file(str(marker), "the model ran code")
            return {"probs": tf.ones([tf.shape(pixels)[0], 10]) / 10}

    module = Writer()
    tf.saved_model.save(module, str(folder), signatures={"serving_default": module.serve})
    return folder


def test_a_saved_model_is_code_and_loads_only_on_trust(tmp_path, capsys):
    from digitrec.cli import main

    folder = _writes_a_file_saved_model(tmp_path / "sm", tmp_path / "written")
    (tmp_path / "written").unlink(missing_ok=True)  # tracing may already have run it
    with pytest.raises(ModelError, match="a SavedModel can run any TensorFlow operation"):
        Recognizer.load(folder)
    assert main(["serve", "--model", str(folder), "--port", "0"]) == 2
    assert "--trust-model" in capsys.readouterr().err and not (tmp_path / "written").exists()
    Recognizer.load(folder, trust_model=True).predict_proba(np.zeros((1, 28, 28), np.float32))
    assert (tmp_path / "written").exists()  # what trust means


def test_a_tflite_loads_only_when_its_sidecar_vouches_for_it_or_on_trust(tmp_path):
    import shutil

    from digitrec.artifact import PRETRAINED_DIR

    bundled = PRETRAINED_DIR / "cnn" / "model-int8.tflite"
    shutil.copy(bundled, tmp_path / "m.tflite")
    with pytest.raises(ModelError, match=r"m\.tflite: its SHA-256 is not recorded in its sidecar"):
        Recognizer.load(tmp_path / "m.tflite")
    shutil.copy(bundled.with_name("model-int8.tflite.json"), tmp_path / "m.tflite.json")
    assert Recognizer.load(tmp_path / "m.tflite").metadata["format"] == "tflite-int8"
    (tmp_path / "m.tflite").write_bytes(bundled.read_bytes()[:-1] + b"\0")
    with pytest.raises(ModelError, match="its SHA-256 differs from its sidecar"):
        Recognizer.load(tmp_path / "m.tflite")
    assert Recognizer.load(tmp_path / "m.tflite", trust_model=True).metadata["format"] == "tflite-int8"


def test_a_model_directory_without_metadata_is_refused_but_its_keras_file_loads(tiny_model_dir, tmp_path):
    import shutil

    shutil.copy(tiny_model_dir / "model.keras", tmp_path / "model.keras")
    with pytest.raises(ModelError, match=r"no metadata\.json, so the weights cannot be checked"):
        Recognizer.load(tmp_path)
    (tmp_path / "metadata.json").write_text('{"format": "digitrec-model/1"}')
    with pytest.raises(ModelError, match=r"no SHA-256 of model\.keras in metadata\.json"):
        Recognizer.load(tmp_path)
    assert Recognizer.load(tmp_path / "model.keras").predict_proba(np.zeros((1, 28, 28))).shape == (1, 10)
