import contextlib
import os
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Corrections and adapted models go to a folder of the test run's own, never the user's.
os.environ["DIGITREC_HOME"] = tempfile.mkdtemp(prefix="digitrec-test-home-")
REPO = Path(__file__).resolve().parents[1]
MNIST_DIR = REPO / "data" / "mnist"
ARTIFACTS = REPO / "artifacts"  # screenshots the tests leave for people to look at (gitignored)
CHROMIUM = Path("/usr/bin/chromium")  # Debian's; Playwright's own browser download is never used
CHROMIUM_ARGS = [
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def png_header(width: int, height: int) -> bytes:
    """A well-formed PNG that declares `width` × `height` grey pixels and holds almost none."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 99))
        + chunk(b"IEND", b"")
    )


@pytest.fixture(scope="session")
def browser():
    """Headless Chromium through Playwright, shared by the page's and the report's tests."""
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.exists(), "needs Debian's Chromium: `make test` installs it (apt-get install -y chromium)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def small_mnist_dir(tmp_path_factory) -> Path:
    """Real MNIST, cut to 5,600 training images (5,000 of them the validation split) and 1,000 test.

    For tests of whole commands on the `cnn` recipe, whose evaluations on the full splits cost
    far more than their training on a few hundred images.
    """
    from digitrec.data import FILE_NAMES, load_dataset, write_idx

    folder = tmp_path_factory.mktemp("data") / "mnist"
    mnist = load_dataset("mnist", MNIST_DIR)
    arrays = {
        "train_images": np.concatenate([mnist.val_images, mnist.train_images[:600]]),
        "train_labels": np.concatenate([mnist.val_labels, mnist.train_labels[:600]]),
        "test_images": mnist.test_images[:1000],
        "test_labels": mnist.test_labels[:1000],
    }
    for role, array in arrays.items():
        write_idx(folder / FILE_NAMES[role], array)
    return folder


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A softmax model trained for one epoch on 2,000 real MNIST images."""
    from digitrec.recipes import recipe
    from digitrec.training import train

    out = tmp_path_factory.mktemp("models") / "tiny"
    train(recipe("softmax", epochs=1, train_limit=2000), out, log=lambda line: None)
    return out


@pytest.fixture(scope="session")
def live_server():
    """The real app on uvicorn, on a free loopback port, serving the bundled default model."""
    from digitrec.recognizer import Recognizer

    with serving(Recognizer.load("default")) as url:
        yield url


@pytest.fixture(scope="session")
def litert_server():
    """`digitrec serve`'s default (the bundled model on LiteRT int8), with short time limits."""
    from digitrec.recognizer import Recognizer

    limits = {"header_timeout_s": 1.0, "request_timeout_s": 3.0, "work_memory_bytes": 300_000_000}
    with serving(Recognizer.load("default-int8"), **limits) as url:
        yield url


@contextlib.contextmanager
def serving(recognizer, **settings):
    """The real app, with `serve`'s uvicorn settings, on a free loopback port, in a thread."""
    import socket
    import threading
    import time

    import uvicorn

    from digitrec.server import ServeConfig, create_app, server_settings

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = ServeConfig(port=port, **settings)
    app = create_app(recognizer, config)
    server = uvicorn.Server(server_settings(app, config, host="127.0.0.1", port=port))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def touching(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Two MNIST digits side by side on a margin, moved together until their ink touches."""
    left, right = (d[:, d.max(0) > 0.3] for d in (left, right))
    for overlap in range(1, min(left.shape[1], right.shape[1])):
        pair = np.zeros((48, left.shape[1] + right.shape[1] - overlap + 20), np.float32)
        pair[10:38, 10 : 10 + left.shape[1]] = left
        at = 10 + left.shape[1] - overlap
        pair[10:38, at : at + right.shape[1]] = np.maximum(pair[10:38, at : at + right.shape[1]], right)
        if ndimage.label(pair > 0.3)[1] == 1:
            break
    return (pair * 255).astype(np.uint8)
