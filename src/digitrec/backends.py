"""What runs a model: Keras, a TensorFlow SavedModel, or the LiteRT interpreter.

Each backend's `run` takes one batch that already meets the input contract
(`digitrec.contract`) and returns its `(n, 10)` probabilities; `Recognizer.predict_proba` is the
one caller, and it checks the input and cuts it into batches. Each backend imports its library
only when a model of its kind is opened: a `.tflite` model answers without TensorFlow or Keras.
"""

import zipfile
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from digitrec.artifact import METADATA_FILE, MODEL_FILE, verify_weights
from digitrec.contract import IMAGE_SHAPE, NUM_CLASSES
from digitrec.errors import ModelError
from digitrec.files import sha256_of, silenced_stderr


class Backend(Protocol):
    """Runs one batch of contract-checked images: `(n, 28, 28)` float32 in, `(n, 10)` out."""

    def run(self, images: np.ndarray) -> np.ndarray: ...


def check_trusted(path: Path, metadata: dict, trust: bool) -> None:
    """Refuse a model that could run code or is unchecked, unless the user said they trust it.

    A SavedModel can run any TensorFlow operation when called, file writes included; there is no
    safe mode to load one. A `.tflite` runs in LiteRT's interpreter, whose parser is native code:
    it opens when its sidecar (what `digitrec export` writes) records its SHA-256, else only on trust.
    Keras files load with `safe_mode=True`, which refuses code (Lambda layers).
    """
    if trust:
        return
    if (path / "saved_model.pb").is_file():
        raise ModelError(
            f"{path.name}: a SavedModel can run any TensorFlow operation (file writes included); "
            "load it only if you trust it: --trust-model (Recognizer.load(path, trust_model=True))"
        )
    if path.suffix == ".tflite" and metadata.get("sha256") != sha256_of(path):
        state = "differs from" if "sha256" in metadata else "is not recorded in"
        raise ModelError(
            f"{path.name}: its SHA-256 {state} its sidecar {path.name}.json (written by digitrec export); "
            "load it only if you trust it: --trust-model (Recognizer.load(path, trust_model=True))"
        )


def open_backend(path: Path, metadata: dict) -> Backend:
    """The backend for the model at `path`: LiteRT for `.tflite`, TensorFlow for a SavedModel,
    else Keras (a model directory, whose weights are checked against `metadata`, or a `.keras`)."""
    if path.suffix == ".tflite":
        return LiteRTBackend(path)
    if (path / "saved_model.pb").is_file():
        return SavedModelBackend(path)
    if path.is_dir():
        weights = path / MODEL_FILE
        if not weights.is_file():
            raise ModelError(f"{path}: no {MODEL_FILE} in this model directory")
        if not metadata:
            raise ModelError(
                f"{path}: no {METADATA_FILE}, so the weights cannot be checked against their SHA-256; "
                f"pass the file itself ({weights}) to load it unchecked"
            )
        verify_weights(weights, metadata)
        return KerasBackend(load_keras(weights))
    if path.suffix != ".keras":
        raise ModelError(f"{path}: expected a model directory, a .keras or .tflite file, or a SavedModel")
    return KerasBackend(load_keras(path))


def load_keras(weights: Path) -> Any:
    """A `.keras` file as an uncompiled Keras model that takes 28×28 images and gives 10 probabilities."""
    import keras

    try:
        # safe_mode refuses Lambda layers' pickled bytecode: loading a model never runs its code.
        model = keras.saving.load_model(weights, compile=False, safe_mode=True)
    except (OSError, ValueError, TypeError, KeyError, zipfile.BadZipFile) as exc:
        raise ModelError(f"{weights}: not a loadable Keras model ({str(exc).splitlines()[0]})") from exc
    try:
        shape = tuple(model(np.zeros((1, *IMAGE_SHAPE), np.float32)).shape)
    except Exception as exc:  # any failure here means the model does not take our input
        raise ModelError(f"{weights}: the model does not take 28×28 images ({exc})") from exc
    if shape != (1, NUM_CLASSES):
        raise ModelError(f"{weights}: the model outputs {shape[1:]}, expected ({NUM_CLASSES},) probabilities")
    return model


class KerasBackend:
    """A Keras model: loaded from disk (`compiled`), or in memory, being trained or just built."""

    def __init__(self, model: Any, compiled: bool = True):
        self.model, self.compiled = model, compiled

    def run(self, images: np.ndarray) -> np.ndarray:
        if self.compiled:
            # The compiled predict function (a tf.function or a jitted one, by backend): ten times
            # faster than an eager call for the small batches a server sees.
            return np.asarray(self.model.predict_on_batch(images), np.float32)
        # A direct call: a model under training lives in a distribution strategy's scope, where
        # `predict_on_batch` would split the batch over the replicas and stack their copies.
        import keras

        return np.asarray(keras.ops.convert_to_numpy(self.model(images, training=False)), np.float32)


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
        try:
            shape = self.run(np.zeros((1, *IMAGE_SHAPE), np.float32)).shape
        except Exception as exc:  # any failure here means the model does not take our input
            raise ModelError(f"{path}: the SavedModel does not take 28×28 images ({exc})") from exc
        if shape != (1, NUM_CLASSES):
            raise ModelError(
                f"{path}: the SavedModel outputs {shape[1:]}, expected ({NUM_CLASSES},) probabilities"
            )

    def run(self, images: np.ndarray) -> np.ndarray:
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
        if tuple(self.input["shape"][1:]) != IMAGE_SHAPE or self.output["shape"][-1] != NUM_CLASSES:
            raise ModelError(
                f"{path}: takes {self.input['shape']} and gives {self.output['shape']}, "
                "expected (n, 28, 28) images and 10 probabilities"
            )
        self.batch = int(self.input["shape"][0])

    def run(self, images: np.ndarray) -> np.ndarray:
        if len(images) != self.batch:
            self.interpreter.resize_tensor_input(self.input["index"], [len(images), *IMAGE_SHAPE])
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
