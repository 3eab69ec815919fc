"""The draw-a-digit page in a real browser: Debian's Chromium, driven by Playwright, against the
real app serving the bundled model (`live_server`). Setup: `apt-get install chromium`; never
`playwright install` (it downloads a browser of its own). Leaves a screenshot in artifacts/page.png."""

import json

import numpy as np
import pytest
from playwright.sync_api import Browser, Page, expect

from digitrec.data import load_dataset, scale
from digitrec.synth import PhotoStyle, render_photo

from .conftest import ARTIFACTS

SCREENSHOT = ARTIFACTS / "page.png"
DESKTOP = {"viewport": {"width": 1000, "height": 860}}
PHONE = {
    "viewport": {"width": 360, "height": 740},
    "device_scale_factor": 3,
    "has_touch": True,
    "is_mobile": True,
}

# Strokes in fractions of the pad: (x, y) from its top-left corner.
ONE = [[(0.5, 0.2), (0.5, 0.8)]]
SEVEN = [[(0.3, 0.25), (0.7, 0.25)], [(0.7, 0.25), (0.45, 0.8)]]
ON_SEVENS_DIAGONAL = (0.575, 0.525)
ON_SEVENS_BAR = (0.4, 0.25)


def open_page(browser: Browser, base_url: str, log: dict[str, list[str]], **context_options) -> Page:
    """A fresh page on `/`; its script errors and its API calls go into `log`."""
    context = browser.new_context(base_url=base_url, **context_options)
    page = context.new_page()
    page.on("pageerror", lambda error: log["errors"].append(str(error)))
    page.on("request", lambda r: "/api/predict" in r.url and log["predictions"].append(r.url))
    page.goto("/")
    return page


@pytest.fixture
def log() -> dict[str, list[str]]:
    return {"errors": [], "predictions": []}


@pytest.fixture
def page(browser, live_server, log):
    page = open_page(browser, live_server, log, **DESKTOP)
    yield page
    page.context.close()
    assert log["errors"] == [], "the page's script raised"


@pytest.fixture
def phone(browser, live_server, log):
    page = open_page(browser, live_server, log, **PHONE)
    yield page
    page.context.close()
    assert log["errors"] == [], "the page's script raised"


def draw(page: Page, strokes, steps: int = 8) -> None:
    """Draw strokes on #pad with the mouse, pressing for each and lifting after it."""
    pad = page.locator("#pad").bounding_box()
    for stroke in strokes:
        points = [(pad["x"] + x * pad["width"], pad["y"] + y * pad["height"]) for x, y in stroke]
        page.mouse.move(*points[0])
        page.mouse.down()
        for x, y in points[1:]:
            page.mouse.move(x, y, steps=steps)
        page.mouse.up()


def wait_for_answer(page: Page) -> None:
    """Until the answer on screen is for the input as it is now (generous: CI machines are busy)."""
    expect(page.locator("#status")).to_have_attribute("data-state", "done", timeout=15_000)


def bar_widths(page: Page) -> dict[str, float]:
    """Each bar's digit and its style width in percent."""
    pairs = page.eval_on_selector_all(
        "#bars > [data-digit]", "bars => bars.map(b => [b.dataset.digit, parseFloat(b.style.width)])"
    )
    return dict(pairs)


def is_ink(page: Page, at: tuple[float, float]) -> bool:
    """Whether the pad's pixel at (x, y), in fractions of its size, is dark."""
    return page.eval_on_selector(
        "#pad",
        """(pad, [x, y]) => {
            const [r, g, b] = pad.getContext("2d").getImageData(
                Math.round(x * pad.width), Math.round(y * pad.height), 1, 1).data;
            return r + g + b < 3 * 128;
        }""",
        list(at),
    )


def ink_pixels(page: Page, selector: str = "#pad") -> int:
    """How many pixels of a canvas differ from its background (white pad, black 28×28)."""
    return page.eval_on_selector(
        selector,
        """canvas => {
            const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
            const background = canvas.id === "pad" ? 255 : 0;
            let count = 0;
            for (let i = 0; i < data.length; i += 4) count += data[i] !== background;
            return count;
        }""",
    )


@pytest.fixture(scope="module")
def mnist_test():
    data = load_dataset("mnist", allow_download=False, progress=False)
    return scale(data.test_images[:10]), data.test_labels[:10]


def test_a_vertical_stroke_reads_as_1_with_the_widest_bar(page):
    draw(page, ONE)
    wait_for_answer(page)
    expect(page.locator("#digit")).to_have_text("1")
    expect(page.locator("#confidence")).to_contain_text("%")
    widths = bar_widths(page)
    assert list(widths) == [str(d) for d in range(10)]
    assert max(widths, key=widths.__getitem__) == "1" and widths["1"] > 50
    expect(page.locator('#bars > [data-digit="1"]')).to_have_class("top")
    assert ink_pixels(page, "#seen") > 20, "the 28×28 image the model saw is not drawn"


def test_a_seven_drawn_in_two_strokes_reads_as_7(page):
    draw(page, SEVEN)
    wait_for_answer(page)
    expect(page.locator("#digit")).to_have_text("7")
    widths = bar_widths(page)
    assert max(widths, key=widths.__getitem__) == "7"
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=SCREENSHOT, full_page=True, animations="disabled")


def test_slow_answers_never_overlap_and_the_finished_drawing_is_read(page, log):
    page.evaluate(
        """() => {  // every answer takes 300 ms; count the requests out at once
            const send = window.fetch;
            let out = 0;
            window.mostInFlight = 0;
            window.fetch = async (...args) => {
                window.mostInFlight = Math.max(window.mostInFlight, ++out);
                try {
                    await new Promise((resolve) => setTimeout(resolve, 300));
                    return await send(...args);
                } finally {
                    out -= 1;
                }
            };
        }"""
    )
    draw(page, SEVEN[:1])  # its pointerup sends the first request; the mouse rests at its end
    pad = page.locator("#pad").bounding_box()
    (x0, y0), (x1, y1) = SEVEN[1]
    page.mouse.down()
    for t in np.linspace(0, 1, 7)[1:]:  # the diagonal, slowly: each pause outlasts the debounce
        x, y = x0 + t * (x1 - x0), y0 + t * (y1 - y0)
        page.mouse.move(pad["x"] + x * pad["width"], pad["y"] + y * pad["height"], steps=4)
        page.wait_for_timeout(200)
    page.mouse.up()
    wait_for_answer(page)
    expect(page.locator("#digit")).to_have_text("7")
    assert page.evaluate("window.mostInFlight") == 1
    assert 2 <= len(log["predictions"]) < 1 + 6 + 1, "requests due while one was out were not merged"


def test_an_empty_pad_and_clear_show_the_empty_message_without_calling_the_api(page, log):
    expect(page.locator("#status")).to_have_attribute("data-state", "empty")
    draw(page, ONE)
    wait_for_answer(page)
    calls = len(log["predictions"])
    assert calls >= 1
    page.click("#clear")
    status = page.locator("#status")
    expect(status).to_have_attribute("data-state", "empty")
    expect(status).to_contain_text("Draw a digit")
    expect(page.locator("#digit")).to_have_text("")
    assert set(bar_widths(page).values()) == {0}
    assert ink_pixels(page) == 0
    page.wait_for_timeout(400)  # past the debounce: still no call
    assert len(log["predictions"]) == calls


def test_undo_removes_the_last_stroke_and_predicts_again(page, log):
    draw(page, SEVEN)
    wait_for_answer(page)
    assert is_ink(page, ON_SEVENS_DIAGONAL) and is_ink(page, ON_SEVENS_BAR)
    ink_before, calls = ink_pixels(page), len(log["predictions"])
    page.click("#undo")
    wait_for_answer(page)
    assert not is_ink(page, ON_SEVENS_DIAGONAL) and is_ink(page, ON_SEVENS_BAR)
    assert 0 < ink_pixels(page) < ink_before
    assert len(log["predictions"]) == calls + 1
    page.click("#undo")
    expect(page.locator("#status")).to_have_attribute("data-state", "empty")
    expect(page.locator("#undo")).to_be_disabled()


def test_an_uploaded_photo_is_shown_and_read(page, mnist_test, tmp_path):
    images, labels = mnist_test
    path = tmp_path / "digit.jpg"
    path.write_bytes(render_photo(images[0], PhotoStyle()))
    page.set_input_files("#upload", path)
    wait_for_answer(page)
    expect(page.locator("#digit")).to_have_text(str(labels[0]))
    expect(page.locator("#photo")).to_be_visible()
    expect(page.locator("#pad")).to_be_hidden()


def test_several_digits_reads_a_number_and_boxes_each_digit(page, mnist_test, tmp_path):
    images, labels = mnist_test
    first, second = 4, 1  # a 4 and a 2
    path = tmp_path / "number.jpg"
    path.write_bytes(render_photo([images[first], images[second]], PhotoStyle(digit_px=100)))
    page.check("#multi")
    page.set_input_files("#upload", path)
    wait_for_answer(page)
    expected = f"{labels[first]}{labels[second]}"
    expect(page.locator("#number")).to_have_text(expected)
    expect(page.locator("#boxes .box-label")).to_have_text(list(expected))
    stage = page.locator("#stage").bounding_box()
    for box in page.locator("#boxes .box").all():
        edges = box.bounding_box()
        assert stage["x"] <= edges["x"] and edges["x"] + edges["width"] <= stage["x"] + stage["width"]


@pytest.mark.parametrize(
    ("fail", "message"),
    [
        (
            lambda route: route.fulfill(status=400, body='{"error":"boom"}', content_type="application/json"),
            "boom",
        ),
        (lambda route: route.abort(), "Could not reach the server"),
    ],
    ids=["http-400", "network"],
)
def test_a_failed_request_shows_its_error(page, fail, message):
    page.route("**/api/predict*", fail)
    draw(page, ONE)
    status = page.locator("#status")
    expect(status).to_have_attribute("data-state", "error")
    expect(status).to_contain_text(message)
    expect(status).to_be_visible()


def test_on_a_phone_the_pad_fits_and_drawing_with_a_finger_does_not_scroll(phone):
    pad = phone.locator("#pad").bounding_box()
    assert pad["x"] >= 0 and pad["x"] + pad["width"] <= 360
    assert phone.evaluate("document.documentElement.scrollWidth") <= 360, "the page is wider than a phone"
    assert phone.evaluate("document.documentElement.scrollHeight > innerHeight"), "nothing could scroll"
    # A "1" drawn upwards: a finger moving up is what would scroll the page down.
    touch = phone.context.new_cdp_session(phone)
    x = pad["x"] + pad["width"] / 2
    ys = np.linspace(pad["y"] + 0.85 * pad["height"], pad["y"] + 0.15 * pad["height"], 12)
    for kind, y in [("touchStart", ys[0]), *[("touchMove", y) for y in ys[1:]]]:
        touch.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": [{"x": x, "y": float(y)}]})
    touch.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    wait_for_answer(phone)
    assert phone.evaluate("window.scrollY") == 0
    assert ink_pixels(phone) > 0
    expect(phone.locator("#digit")).to_have_text("1")


def prediction(digit: int, box: list[int] | None = None) -> dict:
    """An answer shaped as the server's, for tests of how the page shows one."""
    probabilities = [0.01] * 10
    probabilities[digit] = 0.91
    image = [[0.0] * 28 for _ in range(28)]
    return {
        "digit": digit,
        "confidence": 0.91,
        "probabilities": probabilities,
        "uncertain": False,
        "box": box,
        "image": image,
    }


def answer_with(route, body: dict) -> None:
    route.fulfill(status=200, body=json.dumps(body), content_type="application/json")


def test_the_answer_reads_an_8_and_a_7(page):
    answers = iter([prediction(8), prediction(7)])
    page.route("**/api/predict*", lambda route: answer_with(route, next(answers)))
    draw(page, ONE)
    expect(page.locator("#status")).to_have_text("Looks like an 8.")
    page.click("#clear")
    draw(page, ONE)
    expect(page.locator("#status")).to_have_text("Looks like a 7.")
    numbers = [0, 1, 7, 8, 11, 18, 80, 110, 800, 11000, 180000]
    said = page.evaluate("numbers => numbers.map(withArticle)", numbers)
    assert said == [
        "a 0",
        "a 1",
        "a 7",
        "an 8",
        "an 11",
        "an 18",
        "an 80",
        "a 110",
        "an 800",
        "an 11000",
        "a 180000",
    ]


@pytest.mark.parametrize(
    "context_options",
    [{**PHONE, "viewport": {"width": 390, "height": 844}}, {"viewport": {"width": 1280, "height": 800}}],
    ids=["phone-390", "laptop-1280"],
)
def test_the_page_with_a_long_number_read_never_scrolls_sideways(browser, live_server, log, context_options):
    page = open_page(browser, live_server, log, **context_options)
    width = context_options["viewport"]["width"]
    # Against the device's width, not innerWidth: on a phone the layout viewport grows to fit the page.
    assert page.evaluate("document.documentElement.scrollWidth") <= width, "the empty page scrolls sideways"
    # 20 digits, as a phone number or an account number would be; boxes in the 280-unit drawing
    digits = [prediction(i * 7 % 10, [8 + 13 * i, 110, 18 + 13 * i, 170]) for i in range(20)]
    body = {**digits[0], "number": "".join(str(d["digit"]) for d in digits), "digits": digits}
    page.route("**/api/predict*", lambda route: answer_with(route, body))
    page.check("#multi")
    draw(page, SEVEN)
    wait_for_answer(page)
    expect(page.locator("#chips button")).to_have_count(20)
    assert page.evaluate("document.documentElement.scrollWidth") <= width, "the answer scrolls sideways"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / f"page-{width}.png", full_page=True, animations="disabled")
    page.context.close()
    assert log["errors"] == [], "the page's script raised"


def _teach(page: Page, profile: str) -> None:
    """Name the profile, draw a 7, and say it is a 1."""
    page.fill("#profile", profile)
    page.dispatch_event("#profile", "change")
    draw(page, SEVEN)
    wait_for_answer(page)
    expect(page.locator("#why")).to_be_visible()
    assert ink_pixels(page, "#saliency") > 20, "the saliency map is not drawn"
    expect(page.locator("#nearest canvas")).to_have_count(4)
    page.get_by_role("button", name="It is a 1").click()
    expect(page.locator("#taught")).to_have_text(f"Kept: it is a 1, for profile “{profile}” (1 so far).")


def test_the_page_shows_why_and_keeps_a_correction_for_the_profile_named(page):
    from digitrec.corrections import CorrectionStore

    _teach(page, "page-writer")
    images, labels = CorrectionStore().examples("page-writer")
    assert labels.tolist() == [1] and images[0].max() > 200, "the digit as the model saw it"
    page.get_by_role("button", name="Right: 7").click()
    expect(page.locator("#taught")).to_have_text("Kept as a right 7, for profile “page-writer” (2 so far).")
    page.reload()
    expect(page.locator("#profile")).to_have_value("page-writer")


def test_on_a_phone_the_explanation_and_the_correction_buttons_fit(phone):
    _teach(phone, "phone-writer")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 360, "the page is wider than a phone"
    for selector in ("#saliency", "#fix button >> nth=9", "#right", "#profile"):
        box = phone.locator(selector).bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 360, selector
