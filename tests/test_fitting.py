from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from digitrec import models
from digitrec.data import Dataset, load_dataset
from digitrec.errors import ConfigError
from digitrec.fitting import TrainResult, compiled_trainer, measure, training_arrays
from digitrec.recipes import recipe

from .conftest import MNIST_DIR


@pytest.fixture(scope="module")
def mnist() -> Dataset:
    return load_dataset("mnist", MNIST_DIR)


@pytest.fixture(scope="module")
def small(mnist) -> Dataset:
    """MNIST cut to 300 validation and 400 test images, so measuring a model takes no time."""
    return replace(
        mnist,
        val_images=mnist.val_images[:300],
        val_labels=mnist.val_labels[:300],
        test_images=mnist.test_images[:400],
        test_labels=mnist.test_labels[:400],
    )


def _result(epochs: int) -> TrainResult:
    return TrainResult(Path("runs/m"), 0.91234, 0.90001, 12.345, epochs, "softmax")


def test_a_results_dict_is_json_ready_with_seconds_rounded():
    assert _result(3).to_dict() == {
        "model_dir": "runs/m",
        "model": "softmax",
        "accuracy": 0.91234,
        "val_accuracy": 0.90001,
        "train_seconds": 12.35,
        "epochs": 3,
    }


def test_a_result_describes_itself_in_one_line():
    assert _result(3).describe() == (
        "test accuracy 0.9123 (validation 0.9000) after 3 epochs, 12.3 s of training; saved to runs/m"
    )


def test_one_epoch_is_singular_in_the_description():
    assert "after 1 epoch, " in _result(1).describe()


def test_training_arrays_are_the_first_train_limit_images_with_one_hot_targets(mnist):
    images, targets = training_arrays(recipe("softmax", train_limit=300), mnist)
    assert images.shape == (300, 28, 28) and images.dtype == np.uint8
    assert np.array_equal(images, mnist.train_images[:300])
    assert targets.shape == (300, 10) and np.array_equal(targets.sum(1), np.ones(300))
    assert np.array_equal(targets.argmax(1), mnist.train_labels[:300]) and set(np.unique(targets)) == {0, 1}


def test_non_digits_come_after_the_digits_with_a_uniform_target(mnist):
    images, targets = training_arrays(recipe("softmax", train_limit=300, non_digits=0.1), mnist)
    assert images.shape == (330, 28, 28) and targets.shape == (330, 10)
    assert np.array_equal(images[:300], mnist.train_images[:300])
    assert np.allclose(targets[300:], 0.1) and np.array_equal(
        targets[:300].argmax(1), mnist.train_labels[:300]
    )


def test_restyled_digits_keep_their_targets_and_replace_about_their_share(mnist):
    images, targets = training_arrays(recipe("softmax", train_limit=400, restyle=0.5), mnist)
    changed = np.mean(
        [not np.array_equal(a, b) for a, b in zip(images, mnist.train_images[:400], strict=True)]
    )
    assert 0.4 < changed < 0.6 and np.array_equal(targets.argmax(1), mnist.train_labels[:400])


def test_a_fine_tune_starts_from_the_given_models_weights(tiny_model_dir):
    from digitrec.recognizer import Recognizer

    start = Recognizer.load(tiny_model_dir).keras_model  # a softmax
    trainer = compiled_trainer(recipe("softmax", init=str(tiny_model_dir)), steps_per_epoch=10)
    assert all(
        np.array_equal(a, b)
        for a, b in zip(trainer.layers[-1].get_weights(), start.get_weights(), strict=True)
    )


def test_a_fine_tune_from_another_architecture_is_refused(tiny_model_dir):
    with pytest.raises(ConfigError, match="weights do not fit"):
        compiled_trainer(recipe("mlp", init=str(tiny_model_dir)), steps_per_epoch=10)


def test_training_arrays_without_a_limit_are_the_whole_training_split(mnist):
    images, targets = training_arrays(recipe("softmax"), mnist)
    assert len(images) == len(targets) == len(mnist.train_images) == 55000


def test_the_trainer_takes_uint8_pixels_and_ends_in_the_named_architecture():
    trainer = compiled_trainer(recipe("softmax"), steps_per_epoch=10)
    assert trainer.inputs[0].dtype == "uint8" and trainer.layers[-1].name == "softmax"


def test_the_trainer_scales_pixels_so_bytes_give_the_architectures_output():
    trainer = compiled_trainer(recipe("softmax"), steps_per_epoch=10)
    architecture = trainer.layers[-1]
    rng = np.random.default_rng(0)
    architecture.set_weights([rng.normal(0, 0.01, (784, 10)).astype(np.float32), np.zeros(10, np.float32)])
    pixels = rng.integers(0, 256, (4, 28, 28)).astype(np.uint8)
    expected = architecture.predict_on_batch(pixels.astype(np.float32) / 255)
    assert np.allclose(trainer.predict_on_batch(pixels), expected, atol=1e-5)


def test_the_trainer_augments_only_when_the_recipe_does():
    plain = compiled_trainer(recipe("softmax"), steps_per_epoch=10)
    augmented = compiled_trainer(recipe("softmax", augment=True), steps_per_epoch=10)
    assert len(augmented.layers) == len(plain.layers) + 1


def test_measure_of_an_untrained_softmax_call_every_image_a_zero(small):
    # Zero weights give every class 0.1, and a tie goes to the first class.
    figures = measure(models.build("softmax"), small)["metrics"]
    for split, labels in (("validation", small.val_labels), ("test", small.test_labels)):
        assert figures[split]["n"] == len(labels)
        assert figures[split]["accuracy"] == pytest.approx(np.mean(labels == 0))
        assert [row[0] for row in figures[split]["confusion"]] == np.bincount(labels, minlength=10).tolist()
