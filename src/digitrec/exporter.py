"""Export a trained model for deployment: Keras, SavedModel (TF Serving), LiteRT float32 or int8.

    digitrec export --model default --format tflite-int8 --out m.tflite

Every format takes the one input contract, `(n, 28, 28)` floats in [0, 1], white ink on black
(an int8 model quantizes them itself from scale 1/255, zero point -128). The output is written
atomically and never over an existing one without `force`; beside it, `<out>.json` records the
source model, the format, the SHA-256, and the test accuracy measured on the exported file.
"""

import tempfile
from pathlib import Path

import numpy as np

from digitrec.artifact import write_metadata
from digitrec.data import load_dataset, scale
from digitrec.errors import ConfigError
from digitrec.files import atomic_dir, atomic_path, sha256_of, silenced_stderr, size_of
from digitrec.recognizer import Recognizer

FORMATS = ("keras", "savedmodel", "tflite", "tflite-int8")
SUFFIXES = {"keras": ".keras", "tflite": ".tflite", "tflite-int8": ".tflite"}
REPRESENTATIVE_IMAGES = 500  # training images that calibrate int8 ranges (never test images)


def export(
    model: str | Path = "default",
    fmt: str = "tflite-int8",
    out: Path | str = "model.tflite",
    *,
    force: bool = False,
    data_dir: Path | str | None = None,
) -> dict:
    """Write `model` in format `fmt` to `out`, measure it on the test set, and describe it."""
    out = Path(out)
    _check_target(fmt, out, force)
    loaded = Recognizer.load(model)
    data = load_dataset(loaded.metadata.get("dataset", "mnist"), data_dir)
    _write(loaded.keras_model, fmt, out, scale(data.train_images[:REPRESENTATIVE_IMAGES]))
    probs = Recognizer.load(out, trust_model=True).predict_proba(scale(data.test_images))  # just written
    metadata = write_metadata(
        out,
        {
            "format": fmt,
            "source": str(loaded.path),
            "source_sha256": loaded.metadata.get("weights_sha256"),
            "source_test_accuracy": loaded.metadata.get("metrics", {}).get("test", {}).get("accuracy"),
            "temperature": loaded.temperature,  # the source's calibration travels with the export
            "dataset": data.name,
            "test_accuracy": float(np.mean(probs.argmax(1) == data.test_labels)),
            "sha256": sha256_of(out / "saved_model.pb" if out.is_dir() else out),
            "bytes": size_of(out),
        },
    )
    return {"out": str(out), **metadata}


def describe_export(done: dict) -> str:
    """`export`'s answer in a line: what was written, its size, and its accuracy beside its source's."""
    text = f"wrote {done['out']} ({done['bytes']:,} bytes, {done['format']}): test accuracy "
    text += f"{done['test_accuracy']:.4f} (source {done['source_test_accuracy']})"
    return f"{text}; metadata in {done['out']}.json"


def _check_target(fmt: str, out: Path, force: bool) -> None:
    """Refuse a format, a suffix or an existing file before minutes of loading and converting."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt in SUFFIXES and out.suffix != SUFFIXES[fmt]:
        raise ConfigError(f"a {fmt} export is a {SUFFIXES[fmt]} file; got --out {out}")
    if out.exists() and not force:
        raise ConfigError(f"{out} exists; pass --force to replace it")


def _write(model, fmt: str, out: Path, representative: np.ndarray) -> None:
    """`model` in `fmt` at `out`, atomically; `representative` calibrates an int8 model's ranges."""
    if fmt == "savedmodel":
        with atomic_dir(out) as tmp:
            model.export(str(tmp), format="tf_saved_model", verbose=False)
    elif fmt == "keras":
        with atomic_path(out) as tmp:
            model.save(tmp)
    else:
        with atomic_path(out) as tmp:  # entered first: a folder that cannot hold `out` fails at once
            tmp.write_bytes(_to_tflite(model, representative if fmt == "tflite-int8" else None))


def _to_tflite(model, representative: np.ndarray | None) -> bytes:
    """LiteRT flatbuffer through a SavedModel (the converter path that keeps Keras 3 weights).

    `from_concrete_functions` with a Keras 3 model writes unfrozen weights that output NaN,
    silently; going through `model.export` does not.
    """
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as saved:
        model.export(saved, format="tf_saved_model", verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved)
        if representative is not None:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = lambda: ([image[None]] for image in representative)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
        with silenced_stderr():  # the converter's C++ prints its settings; replayed if it fails
            return converter.convert()
