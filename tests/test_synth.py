import io

import numpy as np
import pytest
from PIL import Image

from digitrec.data import load_dataset, scale
from digitrec.recognizer import Recognizer
from digitrec.synth import PhotoStyle, non_digits, render_photo, restyled

from .conftest import MNIST_DIR


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    return scale(load_dataset("mnist", MNIST_DIR).test_images[:3])


@pytest.fixture(scope="module")
def recognizer_default() -> Recognizer:
    return Recognizer.load("default")


def _open(photo: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(photo))
    image.load()
    return image


@pytest.mark.parametrize(("quality", "kind"), [(85, "JPEG"), (None, "PNG")])
def test_a_photo_is_a_decodable_image_of_the_format_the_style_asks_for(digits, quality, kind):
    image = _open(render_photo(digits[0], PhotoStyle(jpeg_quality=quality)))
    assert image.format == kind and image.mode == "RGB"


def test_a_photo_is_the_digit_plus_its_margins_in_size():
    style = PhotoStyle(digit_px=100, margin=(0.5, 0.2, 0.5, 0.2), jpeg_quality=None)
    side = round(100 * 28 / 20)  # the 28-px MNIST frame, scaled so its 20-px ink box is 100 px
    image = _open(render_photo(np.zeros((28, 28), np.float32), style))
    assert image.size == (side + 50 + 50, side + 20 + 20)


def test_the_same_seed_gives_the_same_bytes(digits):
    style = PhotoStyle(noise=6.0)
    assert render_photo(digits[0], style, seed=3) == render_photo(digits[0], style, seed=3)


def test_another_seed_gives_other_sensor_noise(digits):
    style = PhotoStyle(noise=6.0)
    assert render_photo(digits[0], style, seed=3) != render_photo(digits[0], style, seed=4)


def test_a_light_on_dark_style_gives_a_dark_photo_and_the_default_a_light_one(digits):
    rng = np.random.default_rng(0)
    dark = np.asarray(_open(render_photo(digits[0], PhotoStyle.random(rng, light_on_dark=True))).convert("L"))
    light = np.asarray(_open(render_photo(digits[0], PhotoStyle.random(rng))).convert("L"))
    assert dark.mean() < 100 < 180 < light.mean()


def test_the_ink_is_where_the_digit_is(digits):
    style = PhotoStyle(
        digit_px=140, margin=(0, 0, 0, 0), noise=0, blur=0, light_gradient=0, jpeg_quality=None
    )
    page = np.asarray(_open(render_photo(digits[0], style)).convert("L"), np.float32)
    big = np.asarray(Image.fromarray((digits[0] * 255).astype(np.uint8)).resize(page.shape[::-1]))
    assert page[big > 200].mean() < 80 and page[big == 0].mean() > 200


def test_several_digits_make_a_row_as_wide_as_they_are_many(digits):
    style = PhotoStyle(digit_px=100, margin=(0, 0, 0, 0), jpeg_quality=None)
    one = _open(render_photo(digits[0], style))
    three = _open(render_photo(list(digits), style))
    assert three.size == (3 * one.size[0], one.size[1])


def test_random_styles_stay_within_their_documented_ranges():
    rng = np.random.default_rng(1)
    for _ in range(50):
        style = PhotoStyle.random(rng)
        assert 100 <= style.digit_px <= 300 and all(0.2 <= m <= 1.5 for m in style.margin)
        assert style.jpeg_quality is None or 60 <= style.jpeg_quality <= 95
        assert min(style.paper) >= 205 and max(style.ink) < 70


def test_non_digits_are_mnist_framed_marks_of_every_kind():
    marks = non_digits(40, np.random.default_rng(0))
    assert marks.shape == (40, 28, 28) and marks.dtype == np.uint8
    assert all(m.max() > 200 for m in marks)  # each has ink ...
    sides = [max(np.ptp(np.nonzero(m > 30)[0]), np.ptp(np.nonzero(m > 30)[1])) + 1 for m in marks]
    assert all(18 <= side <= 21 for side in sides), sides  # ... fitted to 20 px, as MNIST's digits
    assert len({m.tobytes() for m in marks}) == 40


def test_restyled_digits_stay_readable_and_change(recognizer_default):
    data = load_dataset("mnist", MNIST_DIR)
    images, labels = data.val_images[:200], data.val_labels[:200]
    redrawn = restyled(images, np.random.default_rng(0))
    assert redrawn.shape == images.shape and redrawn.dtype == np.uint8
    assert np.mean(np.abs(redrawn.astype(int) - images)) > 10
    read = recognizer_default.predict_proba(scale(redrawn)).argmax(1)
    assert np.mean(read == labels) > 0.9
