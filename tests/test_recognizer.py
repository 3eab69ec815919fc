import io
import itertools

import numpy as np
import pytest
from PIL import Image, ImageDraw

from digitrec.data import load_dataset, scale
from digitrec.errors import ConfigError, ImageError, InputError
from digitrec.recognizer import UNCERTAIN_BELOW, Prediction, Recognizer
from digitrec.synth import PhotoStyle, render_photo

from .conftest import MNIST_DIR, touching


@pytest.fixture(scope="module")
def recognizer() -> Recognizer:
    return Recognizer.load("default")


@pytest.fixture(scope="module")
def test_digits() -> tuple[np.ndarray, np.ndarray]:
    data = load_dataset("mnist", MNIST_DIR)
    return scale(data.test_images[:100]), data.test_labels[:100]


def test_photos_of_mnist_digits_are_read_right(recognizer, test_digits):
    images, labels = test_digits
    rng = np.random.default_rng(1)
    photos = [
        render_photo(images[i], PhotoStyle.random(rng, light_on_dark=i % 4 == 0), seed=i) for i in range(30)
    ]
    answers = recognizer.predict(photos)
    assert sum(a.digit == label for a, label in zip(answers, labels, strict=False)) >= 29
    assert all(len(a.probabilities) == 10 and abs(sum(a.probabilities) - 1) < 1e-4 for a in answers)


def test_every_input_kind_gives_the_same_answer(recognizer, test_digits, tmp_path):
    images, labels = test_digits
    png = io.BytesIO()
    Image.fromarray((255 - images[0] * 255).astype(np.uint8)).resize((140, 140)).save(png, "PNG")
    (tmp_path / "seven.png").write_bytes(png.getvalue())
    inputs = [
        tmp_path / "seven.png",
        str(tmp_path / "seven.png"),
        png.getvalue(),
        Image.open(io.BytesIO(png.getvalue())),
        images[0],
    ]
    assert [a.digit for a in recognizer.predict(inputs)] == [labels[0]] * 5
    assert recognizer.predict(images[0])[0].digit == labels[0]  # one image, not a list
    assert [a.digit for a in recognizer.predict(images[:5])] == list(labels[:5])


def test_a_blank_image_is_uncertain_not_a_confident_digit(recognizer):
    [answer] = recognizer.predict([np.full((200, 200), 255, np.uint8)])
    assert answer.uncertain and answer.reason == "no ink"


def test_a_scribble_is_flagged_uncertain(recognizer):
    page = Image.new("L", (200, 200), 255)
    from PIL import ImageDraw

    draw = ImageDraw.Draw(page)
    rng = np.random.default_rng(3)
    draw.line([tuple(p) for p in rng.integers(20, 180, (14, 2))], fill=0, width=6)
    [answer] = recognizer.predict([page])
    assert answer.uncertain == (answer.confidence < UNCERTAIN_BELOW)
    assert answer.uncertain, answer.confidence


def test_a_number_is_read_left_to_right_with_boxes(recognizer, test_digits):
    images, labels = test_digits
    order = [1, 0, 3, 4]  # 2, 7, 0, 4
    [answer] = recognizer.predict(
        [render_photo([images[i] for i in order], PhotoStyle(digit_px=110))], multi=True
    )
    assert answer.number == "".join(str(labels[i]) for i in order)
    boxes = [d.box for d in answer.digits]
    assert len(boxes) == 4 and all(b[0] < c[0] for b, c in itertools.pairwise(boxes))
    record = answer.to_dict(top_k=2)
    assert record["number"] == answer.number and len(record["digits"]) == 4 and len(record["top_k"]) == 2


@pytest.mark.parametrize(("left", "right"), [(1, 4), (3, 1), (4, 3), (0, 1)])
def test_touching_digits_are_read_as_two_where_the_model_reads_the_pieces_better(
    recognizer, test_digits, left, right
):
    images, labels = test_digits
    [answer] = recognizer.predict(touching(images[left], images[right]), multi=True)
    assert answer.number == f"{labels[left]}{labels[right]}"


@pytest.mark.parametrize(("left", "right"), [(4, 6), (0, 9)])  # 4 4 and 7 9, each read whole as one digit
def test_touching_digits_that_pass_for_one_confident_digit_are_read_as_two(
    recognizer, test_digits, left, right
):
    images, labels = test_digits
    [answer] = recognizer.predict(touching(images[left], images[right]), multi=True)
    assert answer.number == f"{labels[left]}{labels[right]}"


def test_a_wide_single_digit_is_read_whole(recognizer, test_digits):
    images, labels = test_digits
    wide = np.asarray(Image.fromarray((images[1] * 255).astype(np.uint8)).resize((42, 28)))  # a 2
    [answer] = recognizer.predict(wide, multi=True)
    assert answer.number == str(labels[1])


def test_a_broken_input_raises_image_error(recognizer):
    with pytest.raises(ImageError, match="not a readable image"):
        recognizer.predict([b"\x89PNG broken"])


def test_raw_pixels_are_refused_not_read_as_confident_nonsense(recognizer, test_digits):
    images, _ = test_digits
    with pytest.raises(InputError, match="got uint8 pixels; divide 0-255 pixels by 255"):
        recognizer.predict_proba((images * 255).astype(np.uint8))
    with pytest.raises(InputError, match="got values from 0 to 255"):
        recognizer.predict_proba(images * 255)
    with pytest.raises(InputError, match=r"got \(28, 28\); pass a single image as images\[None\]"):
        recognizer.predict_proba(images[0])


def test_probabilities_come_in_batches_of_any_size_and_agree(recognizer, test_digits):
    images, labels = test_digits
    probs = recognizer.predict_proba(np.concatenate([images] * 6))  # 600 images: more than one batch
    assert probs.shape == (600, 10) and np.allclose(probs[:100], probs[500:], atol=1e-5)
    assert np.mean(probs[:100].argmax(1) == labels) >= 0.97
    assert recognizer.predict_proba(np.zeros((0, 28, 28), np.float32)).shape == (0, 10)


def test_files_are_found_under_folders_and_a_broken_one_is_answered_with_its_error(recognizer, tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "blank.png").write_bytes(_png(np.full((40, 40), 255, np.uint8)))
    (tmp_path / "broken.png").write_bytes(b"\x89PNG broken")
    (tmp_path / "notes.txt").write_text("not an image")
    answers = dict(recognizer.predict_files([tmp_path]))
    assert sorted(p.name for p in answers) == ["blank.png", "broken.png"]
    assert isinstance(answers[tmp_path / "broken.png"], ImageError)
    assert answers[tmp_path / "sub" / "blank.png"].reason == "no ink"
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no image files"):
        list(recognizer.predict_files([tmp_path / "empty"]))


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _reading(*confidences: float, uncertain: bool = False) -> Prediction:
    """A number's reading as `Recognizer.answer` makes it: digits 2, 0, 2, 6 of these confidences."""

    def one(digit: int, confidence: float, box: tuple) -> Prediction:
        probs = [(1 - confidence) / 9] * 10
        probs[digit] = confidence
        low = confidence < UNCERTAIN_BELOW
        return Prediction(digit, confidence, probs, low, "low confidence" if low else None, box)

    boxes = [(10 * i, 0, 10 * i + 9, 20) for i in range(len(confidences))]
    digits = [one(d, c, box) for d, c, box in zip((2, 0, 2, 6), confidences, boxes, strict=False)]
    whole = one(4, 0.432, (0, 0, 40, 20))  # the whole image read as one digit: a guess with no meaning
    number = "".join(str(d.digit) for d in digits)
    reason = "low confidence" if uncertain else None
    return Prediction(4, 0.432, whole.probabilities, uncertain, reason, whole.box, None, number, digits)


def test_a_number_leads_with_itself_and_the_product_of_its_digits_confidences():
    record = _reading(0.99, 0.99, 0.98, 0.99).to_dict(whole=False)
    assert list(record)[:3] == ["number", "confidence", "confidence_of"] and record["number"] == "2026"
    assert record["confidence"] == pytest.approx(0.99 * 0.99 * 0.98 * 0.99, abs=1e-6)
    assert record["confidence_of"] == "product of the digits' confidences"
    assert "digit" not in record and "probabilities" not in record and record["uncertain"] is False


def test_the_http_schema_keeps_the_whole_image_guess_beside_the_number():
    record = _reading(0.99, 0.99).to_dict(top_k=2)
    assert record["number"] == "20" and record["digit"] == 4 and len(record["top_k"]) == 2
    assert record["confidence"] == pytest.approx(0.99 * 0.99, abs=1e-6)


def test_a_number_is_described_on_one_line_then_one_line_per_digit():
    head, *lines = _reading(0.99, 0.5, uncertain=True).describe().splitlines()
    assert head == "20 (0.495, the product of its 2 digits' confidences)  uncertain: low confidence"
    assert lines == [
        "  2 (0.990)  at (0, 0, 9, 20)",
        "  0 (0.500)  at (10, 0, 19, 20)  uncertain: low confidence",
    ]


def test_an_image_of_several_digits_read_as_one_is_uncertain_and_says_so(recognizer, test_digits):
    images, labels = test_digits
    photo = render_photo([images[0], images[1]], PhotoStyle(digit_px=90))
    [answer] = recognizer.predict([photo])
    assert answer.uncertain and answer.reason == "looks like 2 digits"
    assert answer.describe().endswith("uncertain: looks like 2 digits; use --multi")
    [number] = recognizer.predict([photo], multi=True)
    assert number.number == f"{labels[0]}{labels[1]}" and number.reason != "looks like 2 digits"


def _drawn(strokes: list[list[tuple[int, int]]]) -> np.ndarray:
    """Dark strokes, 8 px wide, on a white 120-px page."""
    page = Image.new("L", (120, 120), 255)
    for stroke in strokes:
        ImageDraw.Draw(page).line(stroke, fill=0, width=8)
    return np.asarray(page)


def test_the_default_doubts_symbols_yet_reads_digits_surely(recognizer, test_digits):
    triangle = _drawn([[(60, 15), (110, 105), (10, 105), (60, 15)]])
    letter_h = _drawn([[(20, 10), (20, 110)], [(100, 10), (100, 110)], [(20, 60), (100, 60)]])
    assert all(answer.uncertain for answer in recognizer.predict([triangle, letter_h]))
    images, labels = test_digits
    answers = recognizer.predict(list(images))
    assert np.mean([answer.digit for answer in answers] == labels) >= 0.99
    assert np.mean([answer.uncertain for answer in answers]) <= 0.05


def _big(image: np.ndarray) -> np.ndarray:
    return np.asarray(
        Image.fromarray((image * 255).astype(np.uint8)).resize((112, 112), Image.BILINEAR), np.float32
    )


def test_a_digit_broken_in_two_pieces_side_by_side_is_read_as_one(recognizer, test_digits):
    images, labels = test_digits
    four = _big(images[4])
    rows, cols = np.mgrid[0:112, 0:112]
    four[np.abs((rows - 56) * np.cos(np.pi / 6) + (cols - 56) * np.sin(np.pi / 6)) < 6] = (
        0  # a pen that skipped
    )
    page = 255 - np.pad(np.hstack([_big(images[1]), four, _big(images[2])]), 20).astype(np.uint8)
    [answer] = recognizer.predict(page, multi=True)
    assert answer.number == f"{labels[1]}{labels[4]}{labels[2]}"
