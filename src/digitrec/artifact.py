"""A trained model on disk: a directory with `model.keras` and `metadata.json` beside it.

The metadata says what the model is and how it was made (architecture, dataset,
hyper-parameters, validation and test figures, library versions, creation time) and carries the
SHA-256 of `model.keras`, checked on every load so a corrupt or swapped file is refused.
Bundled pretrained models live in the same form inside the package, under `pretrained/`.
"""

import contextlib
import datetime
import json
import platform
import zipfile
from dataclasses import dataclass
from importlib import metadata as package_metadata
from pathlib import Path

import keras
import numpy as np

from digitrec.errors import ModelError
from digitrec.files import atomic_path, atomic_write_text, sha256_of
from digitrec.models import IMAGE_SHAPE, NUM_CLASSES

MODEL_FILE = "model.keras"
METADATA_FILE = "metadata.json"
PRETRAINED_DIR = Path(__file__).parent / "pretrained"
BUNDLED = {"default": "cnn", "cnn": "cnn", "ensemble": "ensemble"}


@dataclass(frozen=True)
class LoadedModel:
    """A Keras model with the metadata it was saved with (empty for a bare `.keras` file)."""

    model: keras.Model
    metadata: dict
    path: Path


def library_versions() -> dict[str, str]:
    """Versions of what a model's numbers depend on."""
    versions = {"python": platform.python_version(), "keras_backend": keras.backend.backend()}
    for package in ("digitrec", "keras", "tensorflow-cpu", "tensorflow", "jax", "numpy"):
        with contextlib.suppress(package_metadata.PackageNotFoundError):
            versions[package] = package_metadata.version(package)
    return versions


def save_model_dir(model: keras.Model, out_dir: Path, metadata: dict) -> Path:
    """Write `model.keras` and then `metadata.json` (with the weights' SHA-256) into `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / MODEL_FILE) as tmp:
        model.save(tmp)
    full = {
        "format": "digitrec-model/1",
        **metadata,
        "parameters": model.count_params(),
        "versions": library_versions(),
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "weights_sha256": sha256_of(out_dir / MODEL_FILE),
    }
    atomic_write_text(out_dir / METADATA_FILE, json.dumps(full, indent=2) + "\n")
    return out_dir


def resolve_model_path(name_or_path: str | Path) -> Path:
    """A model directory or `.keras` file from a path, or from a bundled name such as `default`."""
    path = Path(name_or_path)
    if path.exists():
        return path
    if str(name_or_path) in BUNDLED:
        bundled = PRETRAINED_DIR / BUNDLED[str(name_or_path)]
        if (bundled / MODEL_FILE).is_file():
            return bundled
        raise ModelError(
            f"the bundled model {name_or_path!r} is not installed at {bundled}; pass --model DIR"
        )
    raise ModelError(
        f"no model at {name_or_path}; pass a model directory, a .keras file, or one of {', '.join(BUNDLED)}"
    )


def load_model(name_or_path: str | Path) -> LoadedModel:
    """Load a model directory, a `.keras` file or a bundled model, checking what it is."""
    path = resolve_model_path(name_or_path)
    metadata: dict = {}
    weights = path
    if path.is_dir():
        weights = path / MODEL_FILE
        metadata = _read_metadata(path)
        if not weights.is_file():
            raise ModelError(f"{path}: no {MODEL_FILE} in this model directory")
        actual = sha256_of(weights)
        if metadata.get("weights_sha256") not in (None, actual):
            raise ModelError(
                f"{weights}: SHA-256 {actual[:12]}… differs from metadata.json: "
                "the file is corrupt or was replaced"
            )
    elif path.suffix != ".keras":
        raise ModelError(f"{path}: expected a model directory or a .keras file")
    try:
        # safe_mode refuses Lambda layers' pickled bytecode: loading a model never runs its code.
        model = keras.saving.load_model(weights, compile=False, safe_mode=True)
    except (OSError, ValueError, TypeError, KeyError, zipfile.BadZipFile) as exc:
        raise ModelError(f"{weights}: not a loadable Keras model ({str(exc).splitlines()[0]})") from exc
    _check_signature(model, weights)
    return LoadedModel(model, metadata, path)


def _read_metadata(path: Path) -> dict:
    file = path / METADATA_FILE
    if not file.is_file():
        return {}
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{file}: unreadable metadata ({exc})") from exc


def _check_signature(model: keras.Model, path: Path) -> None:
    probe = np.zeros((1, *IMAGE_SHAPE), np.float32)
    try:
        shape = tuple(model(probe).shape)
    except Exception as exc:  # any failure here means the model does not take our input
        raise ModelError(f"{path}: the model does not take 28×28 images ({exc})") from exc
    if shape != (1, NUM_CLASSES):
        raise ModelError(f"{path}: the model outputs {shape[1:]}, expected ({NUM_CLASSES},) probabilities")
