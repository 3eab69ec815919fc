import numpy as np
import pytest

from digitrec.adaptation import AdaptConfig, AdaptResult, adapt, held_back_split
from digitrec.artifact import PRETRAINED_DIR, read_metadata, resolve_model_path
from digitrec.data import load_dataset
from digitrec.errors import ConfigError, InputError
from digitrec.recognizer import Recognizer

from .conftest import MNIST_DIR

SHORT = AdaptConfig(max_steps=60, check_every=20, blind_steps=20)  # a few seconds of training


def crossed(digits: np.ndarray) -> np.ndarray:
    """A writer who crosses every digit, as some cross their 7s: a bar through the middle,
    which turns the base's 1s into something else altogether."""
    out = digits.copy()
    out[:, 13:15, 6:22] = 255
    return out


@pytest.fixture(scope="module")
def writer() -> tuple[np.ndarray, np.ndarray]:
    """Ten training digits of each kind, crossed."""
    mnist = load_dataset("mnist", MNIST_DIR)
    chosen = np.concatenate([np.flatnonzero(mnist.train_labels == d)[:10] for d in range(10)])
    return crossed(mnist.train_images[chosen]), mnist.train_labels[chosen]


@pytest.fixture(scope="module")
def adapted(writer, tmp_path_factory) -> AdaptResult:
    out = tmp_path_factory.mktemp("adapted") / "crosser"
    return adapt("default", *writer, out, profile="crosser", config=SHORT, log=lambda line: None)


def test_adapting_to_a_writer_the_base_misreads_reads_their_held_back_digits_better(adapted):
    assert adapted.held_back == 20 and adapted.steps > 0
    assert adapted.held_back_accuracy_before < 0.9
    assert adapted.held_back_accuracy_after > adapted.held_back_accuracy_before


def test_the_adapted_model_keeps_mnist_validation_within_a_tenth_of_a_point(adapted):
    assert adapted.validation_accuracy_after >= adapted.validation_accuracy_before - 0.001 - 1e-9


def test_the_adapted_model_loads_and_its_metadata_says_how_it_was_made(adapted):
    recognizer = Recognizer.load(adapted.model_dir)
    meta = recognizer.metadata
    assert meta["adapted_from"] == "default" and meta["profile"] == "crosser"
    assert (meta["examples"], meta["held_back"], meta["adapt_steps"]) == (100, 20, adapted.steps)
    assert meta["held_back_accuracy_after"] == adapted.held_back_accuracy_after
    assert meta["validation_accuracy_after"] == adapted.validation_accuracy_after
    assert meta["metrics"]["validation"]["accuracy"] == adapted.validation_accuracy_after
    assert "test" not in meta["metrics"]  # nothing measured it; the base's figure no longer holds
    assert meta["config"] == read_metadata(resolve_model_path("default"))["config"]  # how the base was made
    assert meta["model"] == "cnn" and 0 < recognizer.temperature < 5
    assert meta["adapt_config"] == {**SHORT.__dict__, "seed": 0}
    assert recognizer.predict_proba(np.zeros((2, 28, 28), np.float32)).shape == (2, 10)


def test_what_is_checked_and_kept_is_the_running_average_of_the_weights(writer, tmp_path):
    """An average that carries all of itself at every step never leaves the base's weights,
    however far the training weights go."""
    frozen = AdaptConfig(max_steps=20, check_every=20, average_decay=1.0)
    result = adapt("default", *writer, tmp_path / "average", config=frozen, log=lambda line: None)
    assert result.held_back_accuracy_after == result.held_back_accuracy_before
    kept = Recognizer.load(result.model_dir).keras_model.get_weights()
    base = Recognizer.load("default").keras_model.get_weights()
    assert all(np.array_equal(k, b) for k, b in zip(kept, base, strict=True))


def test_with_every_digit_written_once_nothing_is_held_back_and_it_still_adapts(writer, tmp_path):
    images, labels = writer[0][::10], writer[1][::10]
    result = adapt("default", images, labels, tmp_path / "once", config=SHORT, log=lambda line: None)
    assert result.held_back == 0 and result.steps == SHORT.blind_steps
    assert result.held_back_accuracy_before is None and result.held_back_accuracy_after is None
    assert "none held back" in result.describe()
    assert Recognizer.load(result.model_dir).metadata["held_back_accuracy_after"] is None


def test_a_fifth_of_each_digit_written_twice_or_more_is_held_back_never_all():
    labels = np.array([3] * 10 + [5] * 2 + [7])
    trained, held = held_back_split(labels, 0.2, np.random.default_rng(0))
    assert sorted(labels[held].tolist()) == [3, 3, 5]
    assert sorted([*trained, *held]) == list(range(13))


def test_a_result_is_json_ready_and_describes_itself_in_one_line(tmp_path):
    result = AdaptResult(tmp_path, 100, 20, 75, 1.0, 0.8, 0.95, 0.9972, 0.9968, 31.234)
    assert result.to_dict()["model_dir"] == str(tmp_path) and result.to_dict()["seconds"] == 31.23
    assert result.describe().startswith(
        "adapted on 80 examples (held back 20: 0.800 -> 0.950; MNIST validation"
    )


GOOD = np.zeros((12, 28, 28), np.uint8), np.arange(12) % 10


@pytest.mark.parametrize(
    ("images", "labels", "fragment"),
    [
        (np.zeros((12, 32, 32), np.uint8), GOOD[1], "expected images shaped (n, 28, 28), got (12, 32, 32)"),
        (np.zeros((12, 28, 28), np.int32), GOOD[1], "got int32 pixels"),
        (np.full((12, 28, 28), 255.0), GOOD[1], "expected pixel values in [0, 1]"),
        (GOOD[0], np.arange(11) % 10, "one label per image, 12, got labels shaped (11,)"),
        (GOOD[0], np.arange(12), "digits 0-9, got labels from 0 to 11"),
        (GOOD[0], GOOD[1].astype(float), "integer digits 0-9, got float64 labels"),
        (GOOD[0][:9], GOOD[1][:9], "at least 10 examples to adapt to, got 9"),
    ],
)
def test_bad_examples_are_refused_saying_what_arrived(images, labels, fragment, tmp_path):
    with pytest.raises(
        InputError, match=fragment.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
    ):
        adapt("default", images, labels, tmp_path, log=lambda line: None)


def test_the_base_models_own_directory_is_refused_as_the_output():
    with pytest.raises(ConfigError, match="the base model's own directory"):
        adapt("default", *GOOD, PRETRAINED_DIR / "cnn", log=lambda line: None)


def test_a_hold_back_share_of_one_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="hold_back must be in"):
        adapt("default", *GOOD, tmp_path, config=AdaptConfig(hold_back=1.0), log=lambda line: None)
