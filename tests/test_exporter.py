import json
import subprocess
import sys

import numpy as np
import pytest

from digitrec.data import load_dataset, scale
from digitrec.errors import ConfigError
from digitrec.exporter import export
from digitrec.recognizer import Recognizer
from digitrec.synth import PhotoStyle, render_photo

from .conftest import MNIST_DIR


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return scale(load_dataset("mnist", MNIST_DIR).test_images[:64])


@pytest.fixture(scope="module")
def exported(tiny_model_dir, tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("exports")
    outs = {
        "keras": folder / "m.keras",
        "savedmodel": folder / "saved",
        "tflite": folder / "f32.tflite",
        "tflite-int8": folder / "int8.tflite",
    }
    for fmt, out in outs.items():
        export(tiny_model_dir, fmt, out, data_dir=MNIST_DIR)
    return outs


@pytest.mark.parametrize("fmt", ["keras", "savedmodel", "tflite"])
def test_float_exports_give_the_source_models_probabilities(tiny_model_dir, exported, images, fmt):
    source = Recognizer.load(tiny_model_dir).predict_proba(images)
    exported_model = Recognizer.load(exported[fmt], trust_model=fmt == "savedmodel")
    assert np.allclose(exported_model.predict_proba(images), source, atol=1e-4)


def test_the_int8_export_agrees_with_the_source_model(tiny_model_dir, exported, images):
    source = Recognizer.load(tiny_model_dir).predict_proba(images)
    int8 = Recognizer.load(exported["tflite-int8"]).predict_proba(images)
    # The tiny model's probabilities are close together, so a few argmaxes may flip; the bundled
    # model's loss is measured in benchmarks/export_formats.py.
    assert np.mean(int8.argmax(1) == source.argmax(1)) >= 0.85 and np.abs(int8 - source).max() < 0.1
    assert exported["tflite-int8"].stat().st_size < 0.4 * exported["tflite"].stat().st_size


def test_the_savedmodel_loads_with_plain_tensorflow(tiny_model_dir, exported, images):
    import tensorflow as tf

    serve = tf.saved_model.load(str(exported["savedmodel"])).signatures["serving_default"]
    [output] = serve(pixels=tf.constant(images)).values()
    source = Recognizer.load(tiny_model_dir)
    source.temperature = 1.0  # the graph gives the model's own answers; its temperature is in the sidecar
    assert np.allclose(output.numpy(), source.predict_proba(images), atol=1e-5)


def test_an_export_carries_its_sources_temperature(tiny_model_dir, exported, images):
    source = Recognizer.load(tiny_model_dir)
    assert source.temperature != 1.0  # fitted on validation as the model was saved
    for fmt in ("keras", "tflite", "savedmodel"):
        assert Recognizer.load(exported[fmt], trust_model=True).temperature == source.temperature


def test_each_export_describes_itself_beside_it(tiny_model_dir, exported):
    meta = json.loads(exported["tflite-int8"].with_name("int8.tflite.json").read_text())
    source = json.loads((tiny_model_dir / "metadata.json").read_text())
    assert meta["format"] == "tflite-int8" and meta["source_sha256"] == source["weights_sha256"]
    assert abs(meta["test_accuracy"] - source["metrics"]["test"]["accuracy"]) < 0.01
    assert meta["bytes"] == exported["tflite-int8"].stat().st_size and len(meta["sha256"]) == 64


def test_an_export_is_not_overwritten_without_force(tiny_model_dir, exported):
    before = exported["tflite"].read_bytes()
    with pytest.raises(ConfigError, match="exists; pass --force"):
        export(tiny_model_dir, "tflite", exported["tflite"], data_dir=MNIST_DIR)
    assert exported["tflite"].read_bytes() == before
    export(tiny_model_dir, "savedmodel", exported["savedmodel"], force=True, data_dir=MNIST_DIR)
    assert (exported["savedmodel"] / "saved_model.pb").is_file()


@pytest.mark.parametrize(
    ("fmt", "out", "fragment"),
    [
        ("onnx", "m.onnx", "unknown format 'onnx'"),
        ("tflite", "m.keras", "a tflite export is a .tflite file"),
    ],
)
def test_bad_export_requests_are_refused(tiny_model_dir, tmp_path, fmt, out, fragment):
    with pytest.raises(ConfigError, match=fragment):
        export(tiny_model_dir, fmt, tmp_path / out)


@pytest.mark.parametrize("fmt", ["tflite", "savedmodel"])
def test_an_export_where_a_file_blocks_the_folder_names_the_out_path(tiny_model_dir, tmp_path, fmt, capsys):
    from digitrec.cli import main

    (tmp_path / "a-file").write_text("not a folder")
    out = tmp_path / "a-file" / ("m.tflite" if fmt == "tflite" else "m")
    command = ["export", "--model", str(tiny_model_dir), "--format", fmt, "--out", str(out)]
    assert main([*command, "--data-dir", str(MNIST_DIR)]) == 2
    assert capsys.readouterr().err == f"digitrec: error: {out}: Not a directory\n"
    assert (tmp_path / "a-file").read_text() == "not a folder"


# Stands in for an install without the train and serve extras: importing any of them fails.
_WITHOUT_EXTRAS = """
import importlib.abc, sys
EXTRAS = {"tensorflow", "keras", "jax", "matplotlib", "tensorboard", "fastapi", "uvicorn"}
class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in EXTRAS:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Absent())
"""


def test_a_litert_model_predicts_a_png_without_the_train_extra(exported, tmp_path):
    data = load_dataset("mnist", MNIST_DIR)
    (tmp_path / "seven.png").write_bytes(
        render_photo(scale(data.test_images[0]), PhotoStyle(jpeg_quality=None))
    )
    model = str(exported["tflite-int8"])
    script = _WITHOUT_EXTRAS + (
        "from digitrec.cli import main\n"
        f"code = main(['predict', {str(tmp_path / 'seven.png')!r}, '--model', {model!r}, '--json'])\n"
        "sys.exit(code)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert json.loads(done.stdout)["digit"] == data.test_labels[0] == 7


def test_a_command_that_needs_a_missing_extra_says_which_to_install(tmp_path):
    script = _WITHOUT_EXTRAS + "from digitrec.cli import main\nsys.exit(main(['evaluate']))\n"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr == (
        "digitrec: error: this needs keras, which is not installed: pip install 'digitrec[train]'\n"
    )


def test_an_int8_export_from_the_command_line_prints_only_its_summary(tiny_model_dir, tmp_path):
    out = tmp_path / "m.tflite"
    command = ["export", "--model", str(tiny_model_dir), "--format", "tflite-int8", "--out", str(out)]
    done = subprocess.run(
        [sys.executable, "-m", "digitrec", *command, "--data-dir", str(MNIST_DIR)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert done.stdout.startswith(f"wrote {out}") and len(done.stdout.splitlines()) == 1


def test_an_exported_file_is_evaluated_with_a_report_but_no_training_curves(exported, tmp_path):
    from digitrec.evaluation import evaluate

    figures = evaluate(exported["tflite"], data_dir=MNIST_DIR, report_dir=tmp_path / "r")
    page = (tmp_path / "r" / "report.html").read_text()
    assert f"accuracy {figures['accuracy']:.4f}" in page
    assert 'alt="reliability diagram"' in page and 'alt="confusion matrix"' in page
    assert 'alt="training curves"' not in page  # a file has no history
