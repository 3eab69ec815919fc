"""Datasets in LeCun's IDX format: reading, writing, finding, downloading, splitting.

MNIST, Fashion-MNIST and KMNIST share the format and the 28×28 shape. A dataset is read from
`--data-dir` where one is given, and from nowhere else: a folder without it is an error, never a
silent fall-back to other data. Otherwise it is looked for, in order, in `$DIGITREC_DATA`, this
repository's `data/` and the user cache (`~/.cache/digitrec`); where it is in none of them it is
downloaded, checked against its SHA-256 and written atomically into `$DIGITREC_DATA` or the cache.

The validation split is the first 5,000 training images, as in TensorFlow's original
`input_data` module that the tutorial used; models and epochs are chosen on it. The test set
is read only for the final figure.
"""

import gzip
import hashlib
import os
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from digitrec.errors import ConfigError, DataError
from digitrec.files import atomic_path, sha256_of

VALIDATION_SIZE = 5000
ROLES = ("train_images", "train_labels", "test_images", "test_labels")
FILE_NAMES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
# IDX type codes (third byte of the magic number) and the big-endian dtypes they stand for.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_IDX_CODES = {np.dtype(v).newbyteorder("="): k for k, v in _IDX_DTYPES.items()}


@dataclass(frozen=True)
class DatasetSpec:
    """Where a dataset comes from: its mirrors and each file's SHA-256."""

    name: str
    mirrors: tuple[str, ...]
    sha256: dict[str, str]  # file name -> hex digest
    source: str


DATASETS = {
    "mnist": DatasetSpec(
        name="mnist",
        mirrors=(
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
        ),
        sha256={
            "train-images-idx3-ubyte.gz": "0b367032e93c5d0cea0925647cfdb18614af8ee15f83e6f2fc2ad904a6835971",
            "train-labels-idx1-ubyte.gz": "1787548bbe0bff1ec2ecdc0ef292b02df999e2d1a6002d27500982c652b17203",
            "t10k-images-idx3-ubyte.gz": "1a1a05eab793c14bb050b398624a11b0ffd1a2953baed553b1b9bd079e2a20be",
            "t10k-labels-idx1-ubyte.gz": "b91679a0acfe4ba0e50a2437a903084cba1f5f92592b016a25a7dfd00455798b",
        },
        source="Y. LeCun, C. Cortes, C. J. C. Burges; CC BY-SA 3.0",
    ),
    "fashion-mnist": DatasetSpec(
        name="fashion-mnist",
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        sha256={
            "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
            "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
        },
        source="H. Xiao, K. Rasul, R. Vollgraf (Zalando Research); MIT",
    ),
    "kmnist": DatasetSpec(
        name="kmnist",
        mirrors=("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
        sha256={
            "train-images-idx3-ubyte.gz": "51467d22d8cc72929e2a028a0428f2086b092bb31cfb79c69cc0a90ce135fde4",
            "train-labels-idx1-ubyte.gz": "e38f9ebcd0f3ebcdec7fc8eabdcdaef93bb0df8ea12bee65224341c8183d8e17",
            "t10k-images-idx3-ubyte.gz": "edd7a857845ad6bb1d0ba43fe7e794d164fe2dce499a1694695a792adfac43c5",
            "t10k-labels-idx1-ubyte.gz": "20bb9a0ef54c7db3efc55a92eef5582c109615df22683c380526788f98e42a1c",
        },
        source="T. Clanuwat et al., Kuzushiji-MNIST (ROIS-DS CODH); CC BY-SA 4.0",
    ),
}


@dataclass(frozen=True)
class Dataset:
    """Images as uint8 (n, 28, 28), white ink on black; labels as uint8 (n,) in 0..9."""

    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    val_images: np.ndarray
    val_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """The images and labels of the "test" or the "validation" split."""
        if name == "test":
            return self.test_images, self.test_labels
        assert name == "validation", name  # callers check the name against their own choices
        return self.val_images, self.val_labels


def scale(images: np.ndarray) -> np.ndarray:
    """uint8 pixels 0..255 to the models' input: float32 in [0, 1]."""
    return np.multiply(images, np.float32(1 / 255), dtype=np.float32)


def read_idx(path: Path | str) -> np.ndarray:
    """Read an IDX file, gzip-compressed (by content, not name) or raw, checking its structure."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except OSError as exc:  # also gzip.BadGzipFile and EOFError's kin, a truncated gzip stream
        raise DataError(f"{path}: cannot read: {exc}") from exc
    except (EOFError, zlib.error) as exc:
        raise DataError(f"{path}: the gzip stream is truncated or corrupt ({exc})") from exc
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{path}: not an IDX file (wrong magic number {raw[:4].hex() or 'empty'})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise DataError(f"{path}: truncated IDX header ({len(raw)} bytes, {ndim} dimensions)")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        fault = "truncated" if len(raw) < expected else "has trailing bytes"
        raise DataError(f"{path}: {fault}: dimensions {shape} need {expected} bytes, the file has {len(raw)}")
    return np.frombuffer(raw, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="), copy=False)


def write_idx(path: Path | str, array: np.ndarray) -> None:
    """Write an array as IDX, gzip-compressed when the name ends in `.gz`; atomically."""
    path = Path(path)
    array = np.asarray(array)
    code = _IDX_CODES.get(array.dtype)
    if code is None or array.ndim == 0:
        raise ConfigError(f"cannot write {array.dtype} array of shape {array.shape} as IDX")
    header = bytes([0, 0, code, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    payload = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    with atomic_path(path) as tmp:
        tmp.write_bytes(gzip.compress(payload, mtime=0) if path.suffix == ".gz" else payload)


def read_split(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one images/labels pair of IDX files and check they belong together."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(
            f"{images_path}: expected uint8 images (n, rows, cols), got {images.dtype} {images.shape}"
        )
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise DataError(f"{labels_path}: expected uint8 labels (n,), got {labels.dtype} {labels.shape}")
    if len(images) != len(labels):
        raise DataError(f"{labels_path}: {len(labels)} labels for {len(images)} images in {images_path.name}")
    if labels.size and labels.max() > 9:
        bad = int(np.argmax(labels > 9))
        raise DataError(f"{labels_path}: label {labels[bad]} at index {bad} is outside 0-9")
    return images, labels


def default_roots() -> list[Path]:
    """The folders searched for a dataset where no --data-dir is given: $DIGITREC_DATA, ./data, cache."""
    roots = []
    if env := os.environ.get("DIGITREC_DATA"):
        roots.append(Path(env))
    roots += [Path(__file__).resolve().parents[2] / "data", cache_root()]
    return roots


def cache_root() -> Path:
    """Where downloads go: $DIGITREC_DATA, or ~/.cache/digitrec."""
    env = os.environ.get("DIGITREC_DATA")
    return Path(env) if env else Path.home() / ".cache" / "digitrec"


def find_files(spec: DatasetSpec, roots: list[Path]) -> dict[str, Path] | None:
    """The first folder holding all four files, as `<root>/<name>/` or `<root>/` itself."""
    for root in roots:
        for folder in (root / spec.name, root):
            paths = _files_in(folder)
            if all(paths.values()):
                return paths  # type: ignore[return-value]
    return None


def _files_in(folder: Path) -> dict[str, Path | None]:
    """Each role's file in `folder`, or None where it is not there."""
    return {role: _existing(folder / FILE_NAMES[role]) for role in ROLES}


def _existing(path: Path) -> Path | None:
    """`path`, or its gunzipped twin (users often unpack the files), if either exists."""
    for candidate in (path, path.with_suffix("")):
        if candidate.is_file():
            return candidate
    return None


def download(spec: DatasetSpec, folder: Path, progress: bool = True) -> dict[str, Path]:
    """Fetch a dataset's four files into `folder`, each checked against its SHA-256."""
    paths = {}
    for role in ROLES:
        name = FILE_NAMES[role]
        target = folder / name
        if not (target.is_file() and sha256_of(target) == spec.sha256[name]):
            _download_file(spec, name, target, progress)
        paths[role] = target
    return paths


def _download_file(spec: DatasetSpec, name: str, target: Path, progress: bool) -> None:
    failures = []
    for mirror in spec.mirrors:
        url = mirror + name
        try:
            with urllib.request.urlopen(url, timeout=30) as response, atomic_path(target) as tmp:
                total = int(response.headers.get("Content-Length") or 0) or None
                digest = hashlib.sha256()
                with (
                    open(tmp, "wb") as out,
                    tqdm(
                        total=total, unit="B", unit_scale=True, desc=name, disable=not progress, leave=False
                    ) as bar,
                ):
                    while chunk := response.read(1 << 16):
                        out.write(chunk)
                        digest.update(chunk)
                        bar.update(len(chunk))
                if digest.hexdigest() != spec.sha256[name]:
                    raise DataError(
                        f"{url}: SHA-256 {digest.hexdigest()} differs from the expected {spec.sha256[name]}"
                    )
            return
        except (OSError, urllib.error.URLError, DataError) as exc:
            failures.append(f"{url}: {getattr(exc, 'reason', exc)}")
    raise DataError(f"could not download {name} ({'; '.join(failures)})")


def load_dataset(
    name: str = "mnist",
    data_dir: Path | str | None = None,
    *,
    allow_download: bool = True,
    progress: bool = True,
) -> Dataset:
    """Find (or download) a dataset and split it into train, validation and test."""
    if name not in DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    spec = DATASETS[name]
    if data_dir:
        paths = _in_data_dir(spec, Path(data_dir))
    else:
        roots = default_roots()
        paths = find_files(spec, roots) or _download_or_explain(spec, roots, allow_download, progress)
    train_images, train_labels = read_split(paths["train_images"], paths["train_labels"])
    test_images, test_labels = read_split(paths["test_images"], paths["test_labels"])
    if len(train_images) <= VALIDATION_SIZE:
        raise DataError(
            f"{paths['train_images']}: {len(train_images)} training images; need more than {VALIDATION_SIZE}"
        )
    v = VALIDATION_SIZE
    return Dataset(
        name, train_images[v:], train_labels[v:], train_images[:v], train_labels[:v], test_images, test_labels
    )


def _in_data_dir(spec: DatasetSpec, folder: Path) -> dict[str, Path]:
    """The dataset's files in `folder` or `folder/NAME/`; what is missing there, if they are not."""
    if paths := find_files(spec, [folder]):
        return paths
    if not folder.is_dir():
        raise DataError(f"--data-dir {folder}: not a folder")
    place = folder / spec.name if (folder / spec.name).is_dir() else folder
    missing = [FILE_NAMES[role] for role, path in _files_in(place).items() if path is None]
    raise DataError(f"--data-dir {folder}: {place} has no {', '.join(missing)} of {spec.name}")


def _download_or_explain(
    spec: DatasetSpec, roots: list[Path], allow_download: bool, progress: bool
) -> dict[str, Path]:
    target = cache_root() / spec.name
    where = ", ".join(str(r / spec.name) for r in roots)
    names = ", ".join(FILE_NAMES[r] for r in ROLES)
    hint = f"put {names} into {target} (or pass --data-dir); looked in {where}"
    if not allow_download:
        raise DataError(f"{spec.name} not found: {hint}")
    try:
        return download(spec, target, progress)
    except DataError as exc:
        raise DataError(f"{spec.name} not found and the download failed: {hint}. {exc}") from exc
