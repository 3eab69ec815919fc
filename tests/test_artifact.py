import json
import shutil

import numpy as np
import pytest

from digitrec.artifact import PRETRAINED_DIR
from digitrec.data import load_dataset, scale
from digitrec.errors import ModelError
from digitrec.files import size_of
from digitrec.recognizer import Recognizer


def test_a_saved_model_directory_describes_itself(tiny_model_dir):
    metadata = json.loads((tiny_model_dir / "metadata.json").read_text())
    assert metadata["model"] == "softmax" and metadata["dataset"] == "mnist"
    assert metadata["config"]["lr"] == 0.01 and metadata["config"]["batch_size"] == 100
    assert 0.5 < metadata["metrics"]["test"]["accuracy"] <= 1 and "validation" in metadata["metrics"]
    assert {"keras", "numpy", "python"} <= set(metadata["versions"]) and metadata["created"]
    assert len(metadata["weights_sha256"]) == 64 and metadata["parameters"] == 7850


def test_a_directory_and_its_keras_file_load_to_the_same_model(tiny_model_dir):
    images = np.random.default_rng(0).random((2, 28, 28), np.float32)
    from_dir, from_file = Recognizer.load(tiny_model_dir), Recognizer.load(tiny_model_dir / "model.keras")
    assert from_dir.metadata["model"] == "softmax" and from_file.metadata == {}
    assert from_file.temperature == 1.0  # a bare file has no metadata, so no fitted temperature
    from_dir.temperature = 1.0
    assert np.allclose(from_dir.predict_proba(images), from_file.predict_proba(images))


def test_a_corrupted_weights_file_is_refused_by_its_checksum(tiny_model_dir, tmp_path):
    copy = shutil.copytree(tiny_model_dir, tmp_path / "copy")
    weights = copy / "model.keras"
    raw = bytearray(weights.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    weights.write_bytes(bytes(raw))
    with pytest.raises(ModelError, match=r"SHA-256 .* differs from metadata\.json"):
        Recognizer.load(copy)


def test_a_file_that_is_not_a_model_is_refused_in_one_line(tmp_path):
    fake = tmp_path / "fake.keras"
    fake.write_bytes(b"not a zip at all")
    with pytest.raises(ModelError, match="not a loadable Keras model") as info:
        Recognizer.load(fake)
    assert "\n" not in str(info.value)


def test_a_missing_model_says_what_would_do(tmp_path):
    with pytest.raises(
        ModelError, match=r"pass a model directory, a \.keras or \.tflite file, .* or one of default"
    ):
        Recognizer.load(tmp_path / "nothing-here")


@pytest.mark.parametrize(("name", "architecture"), [("default", "cnn"), ("ensemble", "ensemble")])
def test_each_bundled_model_reads_the_first_thousand_test_digits(name, architecture):
    loaded = Recognizer.load(name)
    data = load_dataset("mnist")
    probs = loaded.predict_proba(scale(data.test_images[:1000]))
    assert (
        loaded.metadata["model"] == architecture and loaded.metadata["metrics"]["test"]["accuracy"] >= 0.995
    )
    assert (
        np.mean(probs.argmax(1) == data.test_labels[:1000]) >= 0.99
    )  # a wrong or broken model scores far less


def test_the_bundled_ensemble_averages_every_member_fixed_in_advance():
    members = Recognizer.load("ensemble").metadata["members"]
    # Every finished warp member: the rule in benchmarks/RESULTS.md takes none out.
    assert [m["seed"] for m in members] == list(range(5, 13))


def test_the_bundled_models_fit_in_twenty_megabytes():
    assert size_of(PRETRAINED_DIR) < 20 * 2**20
