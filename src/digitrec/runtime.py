"""Backends that run a model: Keras, a TensorFlow SavedModel, or the LiteRT interpreter.

Each takes `(n, 28, 28)` float32 images in [0, 1] and returns `(n, 10)` probabilities. The
LiteRT backend imports neither TensorFlow nor Keras, so a `.tflite` model answers a one-shot
command in a fraction of a second.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from digitrec.errors import ModelError
from digitrec.files import silenced_stderr


class Backend(Protocol):
    """What runs a model: `(n, 28, 28)` float32 images in, `(n, 10)` probabilities out."""

    def predict_proba(self, images: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class LoadedBackend:
    backend: Backend
    metadata: dict
    path: Path


def load_backend(name_or_path: str | Path = "default") -> LoadedBackend:
    """The backend for a model: LiteRT for `.tflite`, TensorFlow for a SavedModel, else Keras."""
    path = Path(name_or_path)
    if path.suffix == ".tflite":
        return LoadedBackend(LiteRTBackend(path), _sidecar_metadata(path), path)
    if (path / "saved_model.pb").is_file():
        return LoadedBackend(SavedModelBackend(path), _sidecar_metadata(path), path)
    keras_backend = KerasBackend(name_or_path)
    return LoadedBackend(keras_backend, keras_backend.loaded.metadata, keras_backend.loaded.path)


def _sidecar_metadata(path: Path) -> dict:
    """The metadata `digitrec export` wrote beside an exported model, if it is there."""
    sidecar = path.with_name(path.name + ".json")
    if not sidecar.is_file():
        return {}
    try:
        return json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{sidecar}: unreadable metadata ({exc})") from exc


class KerasBackend:
    """A `.keras` file, a model directory or a bundled model, through Keras."""

    def __init__(self, name_or_path: str | Path):
        from digitrec.artifact import load_model

        self.loaded = load_model(name_or_path)

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        # The compiled predict function (a tf.function or a jitted one, by backend): ten times
        # faster than an eager call for the small batches a server sees.
        if len(images) == 0:
            return np.zeros((0, 10), np.float32)
        return np.asarray(self.loaded.model.predict_on_batch(images), np.float32)


class SavedModelBackend:
    """A SavedModel written by `digitrec export --format savedmodel`, through TensorFlow."""

    def __init__(self, path: Path):
        import tensorflow as tf

        self.tf = tf
        try:
            self.serve = tf.saved_model.load(str(path)).signatures["serving_default"]
        except (OSError, ValueError, KeyError) as exc:
            raise ModelError(
                f"{path}: not a loadable SavedModel with a serving_default signature ({exc})"
            ) from exc
        [self.input_name] = self.serve.structured_input_signature[1]  # signatures take keywords only

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        [output] = self.serve(**{self.input_name: self.tf.constant(images)}).values()
        return np.asarray(output, np.float32)


class LiteRTBackend:
    """A `.tflite` model (float32 or full-integer int8) through `ai_edge_litert`."""

    def __init__(self, path: Path):
        from ai_edge_litert.interpreter import Interpreter

        if not path.is_file():
            raise ModelError(f"no model at {path}")
        try:
            with silenced_stderr():  # LiteRT announces its XNNPACK delegate on every load
                self.interpreter = Interpreter(model_path=str(path))
                self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"{path}: not a loadable LiteRT model ({exc})") from exc
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        if tuple(self.input["shape"][1:]) != (28, 28) or self.output["shape"][-1] != 10:
            raise ModelError(
                f"{path}: takes {self.input['shape']} and gives {self.output['shape']}, "
                "expected (n, 28, 28) images and 10 probabilities"
            )
        self.batch = int(self.input["shape"][0])

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        if len(images) != self.batch:
            self.interpreter.resize_tensor_input(self.input["index"], [len(images), 28, 28])
            self.interpreter.allocate_tensors()
            self.batch = len(images)
            self.input = self.interpreter.get_input_details()[0]
            self.output = self.interpreter.get_output_details()[0]
        self.interpreter.set_tensor(self.input["index"], _quantize(images, self.input))
        self.interpreter.invoke()
        return _dequantize(self.interpreter.get_tensor(self.output["index"]), self.output)


def _quantize(images: np.ndarray, detail: dict) -> np.ndarray:
    scale, zero_point = detail["quantization"]
    if detail["dtype"] == np.float32 or not scale:
        return images.astype(detail["dtype"])
    info = np.iinfo(detail["dtype"])
    return np.clip(np.round(images / scale + zero_point), info.min, info.max).astype(detail["dtype"])


def _dequantize(values: np.ndarray, detail: dict) -> np.ndarray:
    scale, zero_point = detail["quantization"]
    if detail["dtype"] == np.float32 or not scale:
        return values.astype(np.float32)
    return ((values.astype(np.float32) - zero_point) * scale).astype(np.float32)
