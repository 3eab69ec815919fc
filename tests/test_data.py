import dataclasses
import functools
import gzip
import http.server
import threading
from pathlib import Path

import numpy as np
import pytest

from digitrec import data
from digitrec.errors import ConfigError, DataError
from digitrec.files import sha256_of

from .conftest import MNIST_DIR


def _write_split(folder: Path, n_train: int = 5010, n_test: int = 7, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        data.write_idx(
            folder / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        )
        data.write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, n, dtype=np.uint8))


@pytest.mark.parametrize("name", ["a.idx", "a.idx.gz"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float32])
def test_idx_round_trips_raw_and_gzip(tmp_path, name, dtype):
    array = (np.arange(2 * 3 * 4) - 5).astype(dtype).reshape(2, 3, 4)
    data.write_idx(tmp_path / name, array)
    back = data.read_idx(tmp_path / name)
    assert back.dtype == np.dtype(dtype) and np.array_equal(back, array)


def test_real_mnist_splits_have_the_documented_sizes():
    mnist = data.load_dataset("mnist", MNIST_DIR)
    assert mnist.train_images.shape == (55000, 28, 28) and mnist.val_images.shape == (5000, 28, 28)
    assert mnist.test_images.shape == (10000, 28, 28) and mnist.test_labels.shape == (10000,)
    assert mnist.train_images.dtype == np.uint8 and set(np.unique(mnist.test_labels)) == set(range(10))


def test_a_split_is_named_test_or_validation(tmp_path):
    _write_split(tmp_path)
    split = data.load_dataset("mnist", tmp_path).split
    (test_images, test_labels), (val_images, val_labels) = split("test"), split("validation")
    assert test_images.shape == (7, 28, 28) and test_labels.shape == (7,)
    assert val_images.shape == (5000, 28, 28) and val_labels.shape == (5000,)


def test_the_bundled_files_match_the_registry_checksums():
    for name, digest in data.DATASETS["mnist"].sha256.items():
        assert sha256_of(MNIST_DIR / name) == digest


@pytest.mark.parametrize(
    ("payload", "fault"),
    [
        (b"\x00\x00\x08\x01\x00\x00\x00\x05\x01\x02", "truncated"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x02\x01\x02\x03", "trailing bytes"),
        (b"\x12\x34\x08\x01\x00\x00\x00\x01\x01", "wrong magic"),
        (b"\x00\x00\x08\x03\x00\x00", "truncated IDX header"),
        (b"", "wrong magic"),
        (gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x01\x01")[:-6], "gzip stream is truncated"),
    ],
)
def test_malformed_idx_names_the_file_and_the_fault(tmp_path, payload, fault):
    path = tmp_path / "broken-idx1-ubyte"
    path.write_bytes(payload)
    with pytest.raises(DataError, match=fault) as info:
        data.read_idx(path)
    assert str(path) in str(info.value)


def test_label_and_image_counts_must_agree(tmp_path):
    data.write_idx(tmp_path / "i.gz", np.zeros((3, 28, 28), np.uint8))
    data.write_idx(tmp_path / "l.gz", np.zeros(2, np.uint8))
    with pytest.raises(DataError, match="2 labels for 3 images"):
        data.read_split(tmp_path / "i.gz", tmp_path / "l.gz")


def test_labels_outside_0_to_9_are_refused(tmp_path):
    data.write_idx(tmp_path / "i.gz", np.zeros((3, 28, 28), np.uint8))
    data.write_idx(tmp_path / "l.gz", np.array([1, 12, 3], np.uint8))
    with pytest.raises(DataError, match="label 12 at index 1 is outside 0-9"):
        data.read_split(tmp_path / "i.gz", tmp_path / "l.gz")


def test_data_dir_comes_before_the_environment_and_the_repository(tmp_path, monkeypatch):
    _write_split(tmp_path / "flag" / "mnist", seed=1)
    _write_split(tmp_path / "env" / "mnist", seed=2)
    monkeypatch.setenv("DIGITREC_DATA", str(tmp_path / "env"))
    from_flag = data.load_dataset("mnist", tmp_path / "flag")
    from_env = data.load_dataset("mnist")
    assert len(from_flag.test_images) == len(from_env.test_images) == 7
    assert not np.array_equal(from_flag.test_images, from_env.test_images)
    assert np.array_equal(
        from_env.test_images, data.read_idx(tmp_path / "env/mnist/t10k-images-idx3-ubyte.gz")
    )


def test_data_dir_may_hold_the_files_directly_and_unpacked(tmp_path):
    _write_split(tmp_path)
    for packed in tmp_path.glob("*.gz"):
        packed.with_suffix("").write_bytes(gzip.decompress(packed.read_bytes()))
        packed.unlink()
    assert len(data.load_dataset("mnist", tmp_path).train_images) == 10


def test_a_data_dir_without_the_dataset_is_refused_not_passed_over(tmp_path):
    # The repository's data/ holds MNIST: falling back to it would train on data the user did not name.
    _write_split(tmp_path / "mnist")
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError) as info:
        data.load_dataset("mnist", tmp_path)
    assert str(info.value) == (
        f"--data-dir {tmp_path}: {tmp_path / 'mnist'} has no t10k-labels-idx1-ubyte.gz of mnist"
    )
    with pytest.raises(DataError, match="fashion-mnist"):
        data.load_dataset("fashion-mnist", tmp_path)
    with pytest.raises(DataError, match="not a folder"):
        data.load_dataset("mnist", tmp_path / "typo")


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(ConfigError, match="mnist, fashion-mnist, kmnist"):
        data.load_dataset("emnist")


@pytest.fixture
def mirror(tmp_path):
    """A loopback HTTP server standing in for a dataset mirror, serving `tmp_path/www`."""
    www = tmp_path / "www"
    www.mkdir()
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(www))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield www, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


def _spec_for(folder: Path, url: str, **changes) -> data.DatasetSpec:
    digests = {p.name: sha256_of(p) for p in folder.glob("*.gz")}
    return dataclasses.replace(
        data.DATASETS["mnist"], name="tiny", mirrors=(url,), sha256={**digests, **changes}
    )


def test_download_fetches_and_verifies_every_file(tmp_path, mirror):
    www, url = mirror
    _write_split(www)
    paths = data.download(_spec_for(www, url), tmp_path / "cache", progress=False)
    for role, path in paths.items():
        assert path.read_bytes() == (www / data.FILE_NAMES[role]).read_bytes()


def test_a_checksum_mismatch_leaves_no_file_behind(tmp_path, mirror):
    www, url = mirror
    _write_split(www)
    spec = _spec_for(www, url, **{"t10k-labels-idx1-ubyte.gz": "0" * 64})
    with pytest.raises(DataError, match="SHA-256"):
        data.download(spec, tmp_path / "cache", progress=False)
    assert not (tmp_path / "cache" / "t10k-labels-idx1-ubyte.gz").exists()
    assert not [p for p in (tmp_path / "cache").iterdir() if ".part" in p.name]


def test_offline_and_missing_says_where_to_put_which_files(tmp_path, monkeypatch):
    monkeypatch.setenv("DIGITREC_DATA", str(tmp_path / "cache"))
    dead = dataclasses.replace(data.DATASETS["kmnist"], mirrors=("http://127.0.0.1:9/",))
    monkeypatch.setitem(data.DATASETS, "kmnist", dead)
    with pytest.raises(DataError) as info:
        data.load_dataset("kmnist")
    message = str(info.value)
    assert "\n" not in message and "train-images-idx3-ubyte.gz" in message
    assert str(tmp_path / "cache" / "kmnist") in message and "download failed" in message
