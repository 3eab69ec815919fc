"""Profiles: adapting to a writer's corrections, and the adapted models a server runs."""

import os
import shutil
import time

import numpy as np
import pytest

from digitrec.adaptation import AdaptConfig
from digitrec.artifact import PRETRAINED_DIR, profile_model_dir
from digitrec.corrections import CorrectionStore
from digitrec.data import load_dataset
from digitrec.errors import ConfigError, ModelError
from digitrec.profiles import SERVING_FILE, BackgroundAdaptation, ProfileModels, adapt_profile, serving_model
from digitrec.recognizer import Recognizer

from .conftest import MNIST_DIR


def _install_served_model(profile: str) -> None:
    """The bundled int8 model and its sidecar, standing in for an adapted one."""
    folder = profile_model_dir(profile)
    folder.mkdir(parents=True, exist_ok=True)
    bundled = PRETRAINED_DIR / "cnn" / "model-int8.tflite"
    shutil.copy(bundled, folder / SERVING_FILE)
    shutil.copy(bundled.with_name(bundled.name + ".json"), folder / (SERVING_FILE + ".json"))


def test_a_profile_is_adapted_from_its_corrections_and_served_as_int8(tmp_path):
    mnist = load_dataset("mnist", MNIST_DIR)
    store = CorrectionStore(tmp_path / "store.sqlite3")
    for image, label in zip(mnist.test_images[:30], mnist.test_labels[:30], strict=True):
        store.add("writer", image, int(label))
    result = adapt_profile("writer", store=store, config=AdaptConfig(max_steps=10, check_every=5), log=print)
    assert result.examples == 30 and result.model_dir == profile_model_dir("writer")
    adapted = Recognizer.load("profile:writer")
    assert adapted.metadata["profile"] == "writer" and adapted.metadata["examples"] == 30
    served = serving_model("writer")
    assert served is not None and served.parent == result.model_dir
    probs = Recognizer.load(served).predict_proba(mnist.test_images[100:200] / 255)
    assert np.mean(probs.argmax(1) == mnist.test_labels[100:200]) >= 0.95


def test_a_profile_without_an_adapted_model_is_one_clear_error():
    with pytest.raises(ModelError, match=r"no model adapted to profile 'nobody' yet; .* digitrec adapt"):
        Recognizer.load("profile:nobody")
    with pytest.raises(ConfigError, match="profile"):
        Recognizer.load("profile:../../etc")
    assert serving_model("nobody") is None


def test_the_server_s_profile_models_load_once_and_again_when_replaced():
    models = ProfileModels()
    assert models.get("served") is None
    _install_served_model("served")
    first = models.get("served")
    assert first is not None and models.get("served") is first
    sidecar = serving_model("served").with_name(SERVING_FILE + ".json")
    later = time.time() + 5
    os.utime(sidecar, (later, later))
    assert models.get("served") is not first


def test_a_model_file_without_its_sidecar_or_not_matching_it_is_not_served():
    models = ProfileModels()
    _install_served_model("half")
    sidecar = profile_model_dir("half") / (SERVING_FILE + ".json")
    sidecar.unlink()  # an export still under way
    assert serving_model("half") is None and models.get("half") is None
    _install_served_model("half")
    served = models.get("half")
    with open(profile_model_dir("half") / SERVING_FILE, "ab") as model:
        model.write(b"new weights, not yet measured")
    later = time.time() + 5
    os.utime(sidecar, (later, later))
    assert models.get("half") is served, "the model before serves until the new one is whole"


def test_background_adaptation_starts_every_n_corrections_one_at_a_time_and_stops(tmp_path):
    adaptation = BackgroundAdaptation("default", every=20)
    assert not adaptation.corrected("bg", 10) and not adaptation.corrected("bg", 19)
    assert adaptation.corrected("bg", 20) and adaptation.running("bg")
    assert adaptation.corrected("bg", 21), "one under way: no second one, but it is adapting"
    adaptation.close()
    assert not adaptation.running("bg")
    assert not BackgroundAdaptation("default", every=0).corrected("bg", 40)


def test_a_profile_is_adapted_by_one_process_at_a_time(tmp_path):
    import fcntl

    from digitrec.profiles import _only_adaptation_of

    with _only_adaptation_of("busy"), open(profile_model_dir("busy").with_suffix(".lock")) as other:
        with pytest.raises(BlockingIOError):
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as another process would find it
        with pytest.raises(ConfigError, match="'busy' is being adapted already"):
            adapt_profile("busy", store=CorrectionStore(tmp_path / "store.sqlite3"))
