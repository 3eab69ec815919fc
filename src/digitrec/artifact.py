"""A model on disk: where it is, what it says about itself, and whether its weights are intact.

A trained model is a directory with `model.keras` and `metadata.json` beside it. The metadata
says what the model is and how it was made (architecture, dataset, hyper-parameters, validation
and test figures, library versions, creation time) and carries the SHA-256 of `model.keras`,
checked on every load so a corrupt or swapped file is refused. An exported file (`.tflite`,
`.keras`, a SavedModel directory) has its metadata in a sidecar, `<name>.json`. Bundled
pretrained models live in the same form inside the package, under `pretrained/`.

This module reads and writes; `digitrec.backends` runs what it finds. It imports no Keras, so
the LiteRT path stays free of TensorFlow.
"""

import contextlib
import datetime
import json
import platform
from pathlib import Path
from typing import Any

from digitrec.corrections import checked_profile
from digitrec.errors import ModelError, did_you_mean
from digitrec.files import atomic_path, atomic_write_text, sha256_of, user_data_dir

MODEL_FILE = "model.keras"
METADATA_FILE = "metadata.json"
PRETRAINED_DIR = Path(__file__).parent / "pretrained"
BUNDLED = {
    "default": "cnn",
    "cnn": "cnn",
    "ensemble": "ensemble",
    "default-int8": "cnn/model-int8.tflite",
}
MODEL_FORMS = "a model directory, a .keras or .tflite file, a SavedModel directory"
PROFILE_PREFIX = "profile:"  # `profile:NAME`: the model adapted to NAME's handwriting


def profile_model_dir(profile: str) -> Path:
    """Where `digitrec adapt --profile NAME` keeps the model adapted to NAME's corrections."""
    return user_data_dir() / "profiles" / profile


def resolve_model_path(name_or_path: str | Path) -> Path:
    """The path of a model given as a path or as a bundled name such as `default`."""
    path = Path(name_or_path)
    if path.exists():
        return _model_form(path)
    if str(name_or_path).startswith(PROFILE_PREFIX):
        profile = str(name_or_path).removeprefix(PROFILE_PREFIX)
        adapted = profile_model_dir(checked_profile(profile))
        if not (adapted / MODEL_FILE).is_file():
            raise ModelError(
                f"no model adapted to profile {profile!r} yet; correct some readings, then run "
                f"digitrec adapt --profile {profile}"
            )
        return adapted
    if str(name_or_path) in BUNDLED:
        bundled = PRETRAINED_DIR / BUNDLED[str(name_or_path)]
        if (bundled / MODEL_FILE).is_file() or (bundled.suffix == ".tflite" and bundled.is_file()):
            return bundled
        raise ModelError(
            f"the bundled model {name_or_path!r} is not installed at {bundled}; pass --model DIR"
        )
    hint = did_you_mean(str(name_or_path), BUNDLED)
    raise ModelError(f"no model at {name_or_path}; pass {MODEL_FORMS}, or one of {', '.join(BUNDLED)}{hint}")


def _model_form(path: Path) -> Path:
    """`path`, where it has the form of a model; whether its content is one, its backend checks."""
    if path.is_dir() and not any((path / name).is_file() for name in (MODEL_FILE, "saved_model.pb")):
        raise ModelError(f"{path}: no {MODEL_FILE} or saved_model.pb in this folder; pass {MODEL_FORMS}")
    if not path.is_dir() and path.suffix not in (".keras", ".tflite"):
        raise ModelError(f"{path}: not a model file; pass {MODEL_FORMS}")
    return path


def metadata_file(path: Path) -> Path:
    """Where a model's metadata is: `metadata.json` in a model directory, else the sidecar."""
    if path.is_dir() and not (path / "saved_model.pb").is_file():
        return path / METADATA_FILE
    return path.with_name(path.name + ".json")


def read_metadata(path: Path) -> dict:
    """A model's metadata (`{}` where it has none)."""
    file = metadata_file(path)
    if not file.is_file():
        return {}
    try:
        metadata = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{file}: unreadable metadata ({exc})") from exc
    if not isinstance(metadata, dict):
        raise ModelError(f"{file}: metadata is not a JSON object")
    return metadata


def write_metadata(path: Path, metadata: dict) -> dict:
    """Write a model's metadata, stamped with library versions and time; returns what was written."""
    full = {
        **metadata,
        "versions": library_versions(),
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    atomic_write_text(metadata_file(path), json.dumps(full, indent=2) + "\n")
    return full


def update_metadata(path: Path, **fields: Any) -> dict:
    """Add or replace fields of a model's metadata, keeping the rest as it was written."""
    metadata = {**read_metadata(path), **fields}
    atomic_write_text(metadata_file(path), json.dumps(metadata, indent=2) + "\n")
    return metadata


def verify_weights(weights: Path, metadata: dict) -> None:
    """Refuse weights whose SHA-256 differs from the one their metadata recorded, or that have none."""
    if "weights_sha256" not in metadata:
        raise ModelError(
            f"{weights.parent}: no SHA-256 of {MODEL_FILE} in {METADATA_FILE}, so its weights cannot be "
            f"checked; pass the file itself ({weights}) to load it unchecked"
        )
    actual = sha256_of(weights)
    if metadata["weights_sha256"] != actual:
        raise ModelError(
            f"{weights}: SHA-256 {actual[:12]}… differs from metadata.json: "
            "the file is corrupt or was replaced"
        )


def save_model_dir(model: Any, out_dir: Path, metadata: dict) -> Path:
    """Write a Keras model's `model.keras`, then `metadata.json` with its SHA-256, into `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / MODEL_FILE) as tmp:
        model.save(tmp)
    write_metadata(
        out_dir,
        {
            "format": "digitrec-model/1",
            **metadata,
            "parameters": model.count_params(),
            "weights_sha256": sha256_of(out_dir / MODEL_FILE),
        },
    )
    return out_dir


def library_versions() -> dict[str, str]:
    """Versions of what a model's numbers depend on."""
    from importlib import metadata as package_metadata  # here: 40 ms that a refused command need not pay

    versions = {"python": platform.python_version()}
    with contextlib.suppress(ImportError):
        import keras  # only where it is installed: the LiteRT path runs without it

        versions["keras_backend"] = keras.backend.backend()
    for package in ("digitrec", "keras", "tensorflow-cpu", "tensorflow", "jax", "numpy", "ai-edge-litert"):
        with contextlib.suppress(package_metadata.PackageNotFoundError):
            versions[package] = package_metadata.version(package)
    return versions
