import json

import numpy as np
import pytest

from digitrec.errors import ConfigError
from digitrec.evaluation import compare, describe_comparison, describe_evaluation, evaluate
from digitrec.recognizer import Recognizer

from .conftest import MNIST_DIR


@pytest.fixture(scope="module")
def figures(tiny_model_dir) -> dict:
    return evaluate(tiny_model_dir, data_dir=MNIST_DIR, split="validation")


@pytest.fixture(scope="module")
def comparison(tiny_model_dir) -> dict:
    """The one `compare` of this file: it measures the whole 10,000-image test set per model."""
    return compare([tiny_model_dir, tiny_model_dir], data_dir=MNIST_DIR)


def test_figures_name_the_model_dataset_and_split(figures, tiny_model_dir):
    assert (figures["model"], figures["dataset"], figures["split"]) == (
        str(tiny_model_dir),
        "mnist",
        "validation",
    )


def test_the_validation_figures_add_up(figures):
    n, accuracy = figures["n"], figures["accuracy"]
    assert n == 5000 and figures["errors"] == round(n * (1 - accuracy))
    assert (
        np.array(figures["confusion"]).sum() == n and np.trace(figures["confusion"]) == n - figures["errors"]
    )
    assert sum(row["support"] for row in figures["per_class"].values()) == n


def test_the_confidence_interval_brackets_the_accuracy(figures):
    low, high = figures["ci95"]
    assert low < figures["accuracy"] < high and high - low < 0.05


def test_figures_carry_calibration_and_timing(figures):
    assert 0 <= figures["calibration"]["ece"] < 1 and figures["seconds"] > 0
    assert sum(b["count"] for b in figures["calibration"]["bins"]) == figures["n"]


def test_an_unknown_split_is_refused_before_any_model_is_loaded():
    with pytest.raises(ConfigError, match="unknown split 'train'; choose one of test, validation"):
        evaluate("/no/such/model", data_dir=MNIST_DIR, split="train")


def test_a_recognizer_in_memory_is_evaluated_like_its_directory(figures, tiny_model_dir):
    in_memory = Recognizer.from_keras(Recognizer.load(tiny_model_dir).keras_model)
    again = evaluate(in_memory, data_dir=MNIST_DIR, split="validation")
    assert (again["model"], again["dataset"]) == ("a model in memory", "mnist")
    assert (again["accuracy"], again["confusion"]) == (figures["accuracy"], figures["confusion"])


def test_a_model_compared_with_itself_disagrees_on_no_image(comparison, tiny_model_dir):
    mcnemar = comparison["mcnemar"]
    assert (mcnemar["a"], mcnemar["b"]) == (str(tiny_model_dir), str(tiny_model_dir))
    assert mcnemar["a_only"] == mcnemar["b_only"] == 0


def test_a_comparison_row_counts_the_weights_file_of_a_model_directory(comparison, tiny_model_dir):
    row = comparison["models"][0]
    assert row["bytes"] == (tiny_model_dir / "model.keras").stat().st_size and row["latency_ms"] > 0


def test_the_evaluation_table_shows_the_accuracy_to_four_places(figures):
    text = describe_evaluation(figures)
    assert (
        f"mnist validation: accuracy {figures['accuracy']:.4f} ({figures['errors']} errors in 5000)" in text
    )
    assert len(text.splitlines()) == 2 + 10 + 1 + 10  # heading, per digit, "confusion", per true digit


def test_the_comparison_table_shows_each_accuracy_and_mcnemars_test(comparison):
    text = describe_comparison(comparison)
    accuracy = comparison["models"][0]["accuracy"]
    assert text.count(f"  {accuracy:.4f}  ") == 2
    assert "McNemar: 0 images only the first gets right, 0 only the second; p = 1" in text


def test_calibrating_an_older_model_records_the_validation_temperature_and_keeps_the_rest(
    tiny_model_dir, tmp_path
):
    import shutil

    from digitrec.evaluation import calibrate

    copy = shutil.copytree(tiny_model_dir, tmp_path / "older")
    before = json.loads((copy / "metadata.json").read_text())
    fitted = before.pop("temperature")
    (copy / "metadata.json").write_text(json.dumps(before))  # as saved before models were calibrated
    assert Recognizer.load(copy).temperature == 1.0
    assert calibrate(copy, data_dir=MNIST_DIR) == pytest.approx(fitted, rel=1e-3)
    after = json.loads((copy / "metadata.json").read_text())
    assert after == {**before, "temperature": after["temperature"]}
    assert Recognizer.load(copy).temperature == after["temperature"]


def test_a_comparison_gives_each_model_its_accuracy_per_digit(comparison):
    from digitrec.data import load_dataset

    assert comparison["n"] == 10_000
    labels = load_dataset("mnist", MNIST_DIR).test_labels
    for row in comparison["models"]:
        assert list(row["per_digit"]) == [str(d) for d in range(10)]
        weighted = sum(row["per_digit"][str(d)] * np.sum(labels == d) for d in range(10)) / len(labels)
        assert weighted == pytest.approx(row["accuracy"])
