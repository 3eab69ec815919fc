import io
import json

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from digitrec.data import VALIDATION_SIZE, load_dataset, scale
from digitrec.errors import InputError
from digitrec.explanation import explain, nearest_examples, overlay_png, saliency
from digitrec.recognizer import Recognizer

from .conftest import MNIST_DIR


@pytest.fixture(scope="module")
def recognizer() -> Recognizer:
    return Recognizer.load("default")


@pytest.fixture(scope="module")
def mnist():
    return load_dataset("mnist", MNIST_DIR)


@pytest.fixture(scope="module")
def digits(mnist) -> np.ndarray:
    """Validation digits: MNIST the models never learnt from."""
    return scale(mnist.val_images[:8])


def test_saliency_is_a_map_in_zero_to_one_that_lies_on_the_ink(recognizer, digits):
    for image in digits:
        heat = saliency(recognizer, image)
        assert heat.shape == (28, 28) and heat.dtype == np.float32
        assert heat.min() >= 0 and heat.max() == pytest.approx(1.0)
        ink = image > 0.5
        far = ~ndimage.binary_dilation(image > 0, iterations=2)  # background 3 px or more from any ink
        assert heat[ink].mean() > 5 * heat[far].mean()


def test_hiding_the_most_salient_pixels_costs_the_answer_more_than_hiding_as_many_random_ink(
    recognizer, digits
):
    rng = np.random.default_rng(0)
    wins = 0
    for image in digits:
        top = np.argsort(-saliency(recognizer, image).ravel())[:30]
        ink = np.flatnonzero(image.ravel() > 0.3)
        hidden = [top] + [rng.choice(ink, 30, replace=False) for _ in range(5)]
        batch = np.repeat(image.reshape(1, -1), 1 + len(hidden), axis=0)
        for row, pixels in zip(batch[1:], hidden, strict=True):
            row[pixels] = 0
        probs = recognizer.predict_proba(batch.reshape(-1, 28, 28))
        drops = probs[0, probs[0].argmax()] - probs[1:, probs[0].argmax()]
        wins += drops[0] > np.median(drops[1:])
    assert wins >= 0.75 * len(digits)


def test_a_blank_image_has_nothing_salient(recognizer):
    assert not saliency(recognizer, np.zeros((28, 28), np.float32)).any()


def test_nearest_examples_are_the_closest_training_digits_of_that_label(mnist, digits):
    query, digit = digits[0], 3
    found = nearest_examples(query, digit, k=3)
    pool = np.flatnonzero(mnist.train_labels == digit)
    distances = ((mnist.train_images[pool] / 255.0 - query.astype(np.float64)) ** 2).sum(axis=(1, 2))
    assert [i for i, _ in found] == [int(pool[j]) + VALIDATION_SIZE for j in np.argsort(distances)[:3]]
    for index, pixels in found:
        assert np.array_equal(pixels, mnist.train_images[index - VALIDATION_SIZE])


def test_a_training_digit_is_its_own_nearest_example(mnist):
    image, label = mnist.train_images[123], int(mnist.train_labels[123])
    [(index, pixels)] = nearest_examples(scale(image), label, k=1)
    assert index == 123 + VALIDATION_SIZE and np.array_equal(pixels, image)


def test_an_explanation_names_the_answer_and_runner_up_with_examples_of_each(recognizer, mnist, digits):
    explanation = explain(recognizer, digits[1])
    probs = recognizer.predict_proba(digits[1:2])[0]
    assert explanation.digit == int(np.argmax(probs)) == mnist.val_labels[1]
    assert explanation.runner_up == int(np.argsort(probs)[-2]) != explanation.digit
    for examples, digit in (
        (explanation.nearest, explanation.digit),
        (explanation.nearest_runner_up, explanation.runner_up),
    ):
        assert len(examples) == 2
        assert [mnist.train_labels[i - VALIDATION_SIZE] for i, _ in examples] == [digit, digit]
    body = json.loads(json.dumps(explanation.to_dict()))
    assert body["digit"] == explanation.digit and body["runner_up"] == explanation.runner_up
    assert len(body["saliency"]) == 28 and all(len(row) == 28 for row in body["saliency"])
    assert body["saliency"][0][0] == round(float(explanation.saliency[0, 0]), 3)
    assert body["nearest"][0]["index"] == explanation.nearest[0][0]
    assert np.array_equal(body["nearest_runner_up"][1]["pixels"], explanation.nearest_runner_up[1][1])


def test_the_overlay_is_a_png_of_the_digit_in_grey_with_the_saliency_in_orange():
    image = np.zeros((28, 28), np.float32)
    image[5:20, 10:14] = 1.0
    heat = np.zeros((28, 28), np.float32)
    heat[5, 10] = 1.0
    picture = Image.open(io.BytesIO(overlay_png(image, heat)))
    assert picture.format == "PNG" and picture.size == (112, 112) and picture.mode == "RGB"
    hot, grey, background = (picture.getpixel((4 * x + 1, 4 * y + 1)) for x, y in ((10, 5), (11, 10), (0, 0)))
    assert hot[0] > hot[2] + 100 and grey == (255, 255, 255) and background == (0, 0, 0)


@pytest.mark.parametrize("shape", [(1, 28, 28), (28, 27)])
def test_explaining_anything_but_one_28_by_28_image_is_refused(recognizer, shape):
    with pytest.raises(InputError, match=rf"one image shaped \(28, 28\), got \({shape[0]}, "):
        saliency(recognizer, np.zeros(shape, np.float32))
