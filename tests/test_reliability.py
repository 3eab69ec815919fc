"""Faults and safety: interrupted downloads and exports, a full disk, untrusted models, soak."""

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
