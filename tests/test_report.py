import contextlib
import datetime
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from digitrec.cli import main
from digitrec.metrics import calibration, mcnemar, wilson_interval
from digitrec.report import EXPLAINED_MISTAKES, confused_pairs, mistakes

from .conftest import ARTIFACTS, MNIST_DIR

VIEWPORTS = [(390, 844), (1280, 800)]  # a phone (iPhone 12 to 15) and a laptop


def _is_png(path) -> tuple[int, int]:
    with Image.open(path) as image:
        assert image.format == "PNG"
        return image.size


@pytest.fixture(scope="module")
def report(tiny_model_dir, tmp_path_factory) -> tuple[dict, Path]:
    """`evaluate --json --report` of the tiny model, once for this file: its figures and folder."""
    out = tmp_path_factory.mktemp("report")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["evaluate", "--model", str(tiny_model_dir), "--json", "--report", str(out)]) == 0
    return json.loads(printed.getvalue().strip().splitlines()[-1]), out


def test_the_report_shows_the_same_numbers_as_json(report):
    figures, out = report
    page = (out / "report.html").read_text()
    assert f"accuracy {figures['accuracy']:.4f}" in page
    cells = [
        int(c) for c in re.findall(r"<td>(\d+)</td>", page.split('id="confusion"')[1].split("</table>")[0])
    ]
    assert cells == [count for row in figures["confusion"] for count in row]
    assert json.loads((out / "metrics.json").read_text())["accuracy"] == figures["accuracy"]
    assert page.count('alt="') - page.count('class="digit"') == 4  # + the training curves
    assert "in orange, the ink whose hiding lowers the answer's log-odds most" in page
    assert 'src="http' not in page
    for name in ("confusion.png", "errors.png", "reliability.png"):
        width, height = _is_png(out / name)
        assert width > 300 and height > 100


def test_the_report_header_names_model_recipe_data_date_and_versions(report, tiny_model_dir):
    header = _text_of(report[1] / "report.html", "header", "</dl>")
    assert f"model{tiny_model_dir} (softmax, 7,850 parameters)" in header
    assert "recipemodel softmax · epochs 1 · batch_size" in header and "train_limit 2000" in header
    assert "datamnist test split, 10,000 images" in header
    assert f"dateevaluated {datetime.datetime.now(datetime.UTC):%Y-%m-%d}" in header
    assert "; model saved 20" in header
    assert re.search(r"versionspython 3\.\d+\.\d+ · .*keras 3\.", header)


def test_the_report_lists_every_mistake_worst_first_with_its_top_two(report):
    figures, out = report
    markup = _text_of(out / "report.html", "mistakes", "</table>", raw=True)
    rows = [re.findall(r"<td>(.*?)</td>", row) for row in markup.split("<tr>")[2:]]
    assert len(rows) == figures["errors"] and all(len(cells) == 7 for cells in rows)
    with_image = ["<img" in cells[1] for cells in rows]
    assert all(with_image[:500]) and sum(with_image) <= 500 + 6 * 8  # and the confused pairs' examples
    explained = ["<img" in cells[2] for cells in rows]
    assert explained == [i < min(EXPLAINED_MISTAKES, len(rows)) for i in range(len(rows))]
    guesses = [[re.fullmatch(r"(\d) \((\S+)\)", cell).groups() for cell in cells[4:6]] for cells in rows]
    assert all(true != first for (_, _, _, true, *_), ((first, _), _) in zip(rows, guesses, strict=True))
    assert all(float(p1) >= float(p2) for (_, p1), (_, p2) in guesses)
    worst_first = [float(p1) for (_, p1), _ in guesses]
    assert worst_first == sorted(worst_first, reverse=True)


def test_the_report_shows_the_most_confused_pairs_with_examples(report):
    figures, out = report
    counts = np.array(figures["confusion"])
    np.fill_diagonal(counts, 0)
    true, read = np.unravel_index(counts.argmax(), counts.shape)
    first = _text_of(out / "report.html", "pairs", "</li>", raw=True)
    assert f"<b>{true} read as {read}: {counts.max()} times</b>" in first
    assert first.count('class="digit"') == min(8, counts.max())
    assert f"a {true} read as {read}" in first  # each example's alt text


def test_training_draws_its_curves_unless_told_not_to(tmp_path):
    from digitrec.recipes import recipe
    from digitrec.training import train

    train(recipe("mlp", epochs=1, train_limit=500), tmp_path / "mlp", log=lambda line: None)
    assert _is_png(tmp_path / "mlp" / "training_curves.png")[0] > 600
    train(recipe("mlp", epochs=1, train_limit=500, curves=False), tmp_path / "bare", log=lambda line: None)
    assert not (tmp_path / "bare" / "training_curves.png").exists()


def test_show_draws_a_grid_of_one_digit(tmp_path, capsys):
    assert (
        main(
            [
                "show",
                "--digit",
                "3",
                "--n",
                "32",
                "--out",
                str(tmp_path / "g.png"),
                "--data-dir",
                str(MNIST_DIR),
            ]
        )
        == 0
    )
    assert _is_png(tmp_path / "g.png")[0] > 400


def test_compare_reports_each_model_and_mcnemar_in_json_and_html(tiny_model_dir, tmp_path, capsys, browser):
    argv = ["compare", str(tiny_model_dir), str(tiny_model_dir / "model.keras"), "--json"]
    assert main([*argv, "--report", str(tmp_path / "c")]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["models"][0]["accuracy"] == result["models"][1]["accuracy"]
    assert result["models"][0]["parameters"] == 7850 and result["models"][0]["latency_ms"] > 0
    assert (
        result["mcnemar"]["a_only"] == result["mcnemar"]["b_only"] == 0
        and result["mcnemar"]["p_value"] == 1.0
    )
    page = (tmp_path / "c" / "report.html").read_text()
    assert "0 only A reads right and 0 only B; exact two-sided p = 1: no evidence" in page
    per_digit = re.findall(r"<tr><th>(\d)</th><td>([\d.]+)</td><td>([\d.]+)</td></tr>", page)
    assert per_digit == [
        (d, f"{result['models'][0]['per_digit'][d]:.4f}", f"{result['models'][1]['per_digit'][d]:.4f}")
        for d in map(str, range(10))
    ]
    assert json.loads((tmp_path / "c" / "metrics.json").read_text()) == result
    for width, height in VIEWPORTS:
        _assert_fits(
            browser, tmp_path / "c" / "report.html", width, height, f"compare-{width}.png"
        ).context.close()


def test_compare_finds_every_model_before_measuring_any(tiny_model_dir, monkeypatch):
    from digitrec import evaluation
    from digitrec.errors import DigitrecError

    monkeypatch.setattr(evaluation, "load_dataset", lambda *args, **kwargs: pytest.fail("measuring began"))
    with pytest.raises(DigitrecError, match="no model at /no/such/model"):
        evaluation.compare([tiny_model_dir, "/no/such/model"])


def test_wilson_interval_brackets_the_proportion():
    low, high = wilson_interval(9900, 10000)
    assert low < 0.99 < high and high - low < 0.005
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_calibration_of_a_perfectly_calibrated_model_is_near_zero():
    rng = np.random.default_rng(0)
    confidence = rng.uniform(0.5, 1.0, 20000)
    labels = (rng.random(20000) > confidence).astype(int)  # right (label 0) with probability = confidence
    probs = np.stack([confidence, 1 - confidence], axis=1)
    assert calibration(labels, probs)["ece"] < 0.02
    assert calibration(labels, np.stack([np.ones(20000), np.zeros(20000)], axis=1))["ece"] > 0.2


@pytest.mark.parametrize(("a_only", "b_only", "p"), [(0, 0, 1.0), (10, 0, 2 / 1024), (5, 5, 1.0)])
def test_mcnemar_exact_p_values(a_only, b_only, p):
    right_a = np.array([True] * a_only + [False] * b_only + [True] * 7)
    right_b = np.array([False] * a_only + [True] * b_only + [True] * 7)
    result = mcnemar(right_a, right_b)
    assert (result["a_only"], result["b_only"]) == (a_only, b_only) and result["p_value"] == pytest.approx(p)


@pytest.mark.parametrize(("width", "height"), VIEWPORTS, ids=["phone", "laptop"])
def test_the_report_renders_its_pictures_with_no_sideways_scroll(report, browser, width, height):
    page = _assert_fits(browser, report[1] / "report.html", width, height, f"report-{width}.png")
    widths = page.eval_on_selector_all("img:not(.digit)", "images => images.map(i => i.naturalWidth)")
    assert len(widths) == 4 and min(widths) > 300  # every embedded PNG decoded
    assert page.eval_on_selector_all("img.digit", "images => images.every(i => i.naturalWidth === 28)")
    assert page.inner_text("#accuracy").startswith("accuracy 0.")
    page.context.close()


def test_mistakes_come_worst_first_with_the_two_most_probable_digits():
    probs = np.array([[0.6, 0.3, 0.1], [0.1, 0.2, 0.7], [0.2, 0.1, 0.7], [0.1, 0.85, 0.05]])
    assert mistakes(np.array([1, 2, 0, 0]), probs) == [
        {"index": 3, "label": 0, "top2": [(1, 0.85), (0, 0.1)]},
        {"index": 2, "label": 0, "top2": [(2, 0.7), (0, 0.2)]},
        {"index": 0, "label": 1, "top2": [(0, 0.6), (1, 0.3)]},
    ]


def test_confused_pairs_are_the_largest_counts_off_the_diagonal():
    confusion = [[50, 3, 0], [7, 40, 1], [0, 3, 60]]
    assert confused_pairs(confusion, limit=3) == [(1, 0, 7), (0, 1, 3), (2, 1, 3)]
    assert confused_pairs([[5, 0], [0, 5]]) == []


def _assert_fits(browser, path: Path, width: int, height: int, screenshot: str):
    """The page at `path` in a `width` × `height` window (a phone's, touch and all, below 600 px),
    which it must fit without scrolling sideways; leaves a full-page screenshot in artifacts/ and
    returns the page (close its context)."""
    phone = width < 600
    context = browser.new_context(
        viewport={"width": width, "height": height}, is_mobile=phone, has_touch=phone
    )
    page = context.new_page()
    page.goto(path.as_uri())
    # Against the window's width, not innerWidth: on a phone the layout viewport grows to fit the page.
    assert page.evaluate("document.documentElement.scrollWidth") <= width, f"scrolls sideways at {width} px"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / screenshot), full_page=True)
    return page


def _text_of(path: Path, element_id: str, end: str, raw: bool = False) -> str:
    """What follows `id="element_id"` in an HTML file up to `end`: its markup, or its text."""
    markup = path.read_text().split(f'id="{element_id}"', 1)[1].split(end, 1)[0]
    return markup if raw else re.sub(r"<[^>]+>", "", markup)
