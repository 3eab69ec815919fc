import json
import re

import numpy as np
import pytest
from PIL import Image

from digitrec.cli import main
from digitrec.metrics import calibration, mcnemar, wilson_interval

from .conftest import MNIST_DIR


def _is_png(path) -> tuple[int, int]:
    with Image.open(path) as image:
        assert image.format == "PNG"
        return image.size


def test_the_report_shows_the_same_numbers_as_json(tiny_model_dir, tmp_path, capsys):
    assert main(["evaluate", "--model", str(tiny_model_dir), "--json", "--report", str(tmp_path / "r")]) == 0
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    page = (tmp_path / "r" / "report.html").read_text()
    assert f"accuracy {figures['accuracy']:.4f}" in page
    cells = [
        int(c) for c in re.findall(r"<td>(\d+)</td>", page.split('id="confusion"')[1].split("</table>")[0])
    ]
    assert cells == [count for row in figures["confusion"] for count in row]
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["accuracy"] == figures["accuracy"]
    assert page.count("data:image/png;base64,") == 4 and 'src="http' not in page  # + the training curves
    for name in ("confusion.png", "errors.png", "reliability.png"):
        width, height = _is_png(tmp_path / "r" / name)
        assert width > 300 and height > 100


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


def test_compare_reports_each_model_and_mcnemar(tiny_model_dir, capsys):
    assert main(["compare", str(tiny_model_dir), str(tiny_model_dir / "model.keras"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["models"][0]["accuracy"] == result["models"][1]["accuracy"]
    assert result["models"][0]["parameters"] == 7850 and result["models"][0]["latency_ms"] > 0
    assert (
        result["mcnemar"]["a_only"] == result["mcnemar"]["b_only"] == 0
        and result["mcnemar"]["p_value"] == 1.0
    )


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


def test_the_report_renders_in_a_browser_with_its_pictures(tiny_model_dir, tmp_path, browser):
    from .conftest import ARTIFACTS

    assert main(["evaluate", "--model", str(tiny_model_dir), "--report", str(tmp_path / "r")]) == 0
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    page.goto((tmp_path / "r" / "report.html").as_uri())
    widths = page.eval_on_selector_all("img", "images => images.map(i => i.naturalWidth)")
    assert len(widths) == 4 and min(widths) > 300  # every embedded PNG decoded
    assert page.inner_text("#accuracy").startswith("accuracy 0.")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
    page.close()
