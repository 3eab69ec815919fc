import json

import keras
import numpy as np
import pytest

from digitrec.backends import KerasBackend, LiteRTBackend, SavedModelBackend, load_keras, open_backend
from digitrec.errors import ModelError

from .conftest import MNIST_DIR


@pytest.fixture(scope="module")
def tflite_file(tiny_model_dir, tmp_path_factory):
    from digitrec.exporter import export

    out = tmp_path_factory.mktemp("litert") / "m.tflite"
    export(tiny_model_dir, "tflite", out, data_dir=MNIST_DIR)
    return out


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(0).random((5, 28, 28), np.float32)


def _save(model: keras.Model, path):
    model.save(path)
    return path


def test_a_tflite_file_opens_on_litert(tflite_file):
    assert isinstance(open_backend(tflite_file, {}), LiteRTBackend)


def test_a_model_directory_opens_on_keras_checked_against_its_metadata(tiny_model_dir):
    metadata = json.loads((tiny_model_dir / "metadata.json").read_text())
    assert isinstance(open_backend(tiny_model_dir, metadata), KerasBackend)


def test_a_model_directory_whose_weights_differ_from_the_given_metadata_is_refused(tiny_model_dir):
    with pytest.raises(ModelError, match=r"model\.keras: SHA-256 .* differs from metadata\.json"):
        open_backend(tiny_model_dir, {"weights_sha256": "0" * 64})


def test_a_keras_file_opens_on_keras(tiny_model_dir):
    assert isinstance(open_backend(tiny_model_dir / "model.keras", {}), KerasBackend)


def _uniform_saved_model(folder, classes: int = 10):
    """A real SavedModel whose serving function gives every image `classes` equal probabilities."""
    import tensorflow as tf

    class Uniform(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 28, 28], tf.float32)])
        def serve(self, pixels):
            return {"probs": tf.fill([tf.shape(pixels)[0], classes], 1 / classes)}

    module = Uniform()
    tf.saved_model.save(module, str(folder), signatures={"serving_default": module.serve})
    return folder


def test_a_saved_model_that_gives_other_than_ten_probabilities_is_refused(tmp_path):
    with pytest.raises(ModelError, match=r"the SavedModel outputs \(3,\), expected \(10,\)"):
        open_backend(_uniform_saved_model(tmp_path / "sm", classes=3), {})


def test_a_folder_with_saved_model_pb_opens_on_tensorflow(tmp_path, images):
    backend = open_backend(_uniform_saved_model(tmp_path / "sm"), {})
    assert isinstance(backend, SavedModelBackend)
    assert np.allclose(backend.run(images), 0.1) and backend.run(images).shape == (5, 10)


def test_a_corrupt_saved_model_is_refused_by_the_tensorflow_backend(tmp_path):
    (tmp_path / "saved_model.pb").write_bytes(b"not a protocol buffer")
    with pytest.raises(ModelError, match="not a loadable SavedModel with a serving_default signature"):
        open_backend(tmp_path, {})


def test_a_directory_without_model_keras_is_refused(tmp_path):
    with pytest.raises(ModelError, match=r"no model\.keras in this model directory"):
        open_backend(tmp_path, {})


def test_a_text_file_is_refused_listing_the_forms_a_model_takes(tmp_path):
    (tmp_path / "notes.txt").write_text("a model")
    with pytest.raises(ModelError, match=r"notes\.txt: expected a model directory, a \.keras or \.tflite"):
        open_backend(tmp_path / "notes.txt", {})


def test_a_corrupt_tflite_file_is_refused(tmp_path):
    (tmp_path / "m.tflite").write_bytes(b"\0" * 64)
    with pytest.raises(ModelError, match=r"m\.tflite: not a loadable LiteRT model"):
        open_backend(tmp_path / "m.tflite", {})


def test_a_keras_model_with_the_wrong_number_of_outputs_is_refused(tmp_path):
    model = keras.Sequential([keras.Input((28, 28)), keras.layers.Flatten(), keras.layers.Dense(3)])
    path = _save(model, tmp_path / "three.keras")
    with pytest.raises(ModelError, match=r"three\.keras: the model outputs \(3,\), expected \(10,\)"):
        load_keras(path)


def test_a_keras_model_that_takes_other_images_is_refused(tmp_path):
    model = keras.Sequential([keras.Input((32, 32)), keras.layers.Flatten(), keras.layers.Dense(10)])
    path = _save(model, tmp_path / "big.keras")
    with pytest.raises(ModelError, match="the model does not take 28×28 images"):
        load_keras(path)


def test_litert_resizes_between_batch_sizes_and_agrees_with_keras(tflite_file, tiny_model_dir, images):
    litert = open_backend(tflite_file, {})
    keras_backend = open_backend(tiny_model_dir / "model.keras", {})
    for batch in (images[:1], images, images[1:2]):
        probs = litert.run(batch)
        assert probs.shape == (len(batch), 10) and probs.dtype == np.float32
        assert np.allclose(probs, keras_backend.run(batch), atol=1e-4)
