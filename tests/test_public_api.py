"""The front door: the names the README promises, and every example in the README, run."""

import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from digitrec.data import load_dataset, scale
from digitrec.synth import PhotoStyle, render_photo

from .conftest import MNIST_DIR, REPO

PUBLIC = ["Recognizer", "Prediction", "TrainConfig", "TrainResult", "recipe", "train", "evaluate", "export"]
ERRORS = ["DigitrecError", "ConfigError", "DataError", "ModelError", "ImageError", "InputError"]
BLOCK = re.compile(r"^```(sh|python)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def test_every_public_name_imports_and_is_the_same_object_on_every_access():
    import digitrec

    for name in PUBLIC + ERRORS:
        first = getattr(digitrec, name)
        importlib.import_module("digitrec.training")  # a submodule import must not replace a name
        importlib.import_module("digitrec.evaluation")
        assert getattr(digitrec, name) is first and name in digitrec.__all__
    assert callable(digitrec.train) and callable(digitrec.evaluate) and callable(digitrec.export)
    assert issubclass(digitrec.InputError, ValueError) and issubclass(
        digitrec.InputError, digitrec.DigitrecError
    )


def test_no_module_shadows_a_function_of_the_package():
    package = REPO / "src" / "digitrec"
    modules = {path.stem for path in package.glob("*.py")}
    assert modules.isdisjoint(PUBLIC + ERRORS)


def test_importing_digitrec_loads_no_tensorflow():
    code = "import sys, digitrec; digitrec.Recognizer; assert 'tensorflow' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.fixture(scope="module")
def readme_folder(tmp_path_factory) -> Path:
    """Where the README's examples run: the images they name, made from real MNIST test digits."""
    folder = tmp_path_factory.mktemp("readme")
    digits = scale(load_dataset("mnist", MNIST_DIR).test_images[:6])
    (folder / "digit.png").write_bytes(render_photo(digits[0], PhotoStyle(jpeg_quality=None)))
    (folder / "number.png").write_bytes(
        render_photo(list(digits[1:5]), PhotoStyle(digit_px=100, jpeg_quality=None))
    )
    (folder / "scans").mkdir()
    (folder / "scans" / "five.jpg").write_bytes(render_photo(digits[5], PhotoStyle()))
    mnist = load_dataset("mnist", MNIST_DIR)  # a writer's own digits, three of each, as photos
    for digit in range(10):
        (folder / "my-digits" / str(digit)).mkdir(parents=True)
        for i in np.flatnonzero(mnist.test_labels[100:] == digit)[:3]:
            photo = render_photo(scale(mnist.test_images[100 + i]), PhotoStyle(jpeg_quality=None))
            (folder / "my-digits" / str(digit) / f"{i}.png").write_bytes(photo)
    return folder


def _readme_blocks(kind: str) -> list[str]:
    return [code for found, code in BLOCK.findall((REPO / "README.md").read_text()) if found == kind]


def _shell_lines() -> list[str]:
    lines = [line.split("  #")[0].strip() for block in _readme_blocks("sh") for line in block.splitlines()]
    # `make test` is the command running this test; every other line runs as written.
    return [line for line in lines if line and line != "make test"]


def test_every_shell_line_of_the_readme_runs_in_order(readme_folder):
    # In order, as a reader would type them: the export reads the model the train line made.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for line in _shell_lines():
        if line == "digitrec serve":
            _serves(line, readme_folder, env)
            continue
        cwd = REPO if line.startswith("make ") else readme_folder
        done = subprocess.run(
            ["bash", "-c", line], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, f"{line}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        assert done.stdout.strip(), line


def _serves(line: str, folder: Path, env: dict) -> None:
    """The server runs until stopped: it must say where it serves; then it is stopped."""
    # Port 8000 may be taken on a shared machine; `--port 0` is the same server on any free port.
    with subprocess.Popen(
        ["bash", "-c", f"exec {line} --port 0"], cwd=folder, env=env, stdout=subprocess.PIPE, text=True
    ) as server:
        try:
            assert server.stdout is not None
            assert "serving default-int8 on http://127.0.0.1:" in server.stdout.readline()
        finally:
            server.terminate()


@pytest.mark.parametrize("code", _readme_blocks("python"))
def test_every_python_block_of_the_readme_runs(code, readme_folder, monkeypatch, capsys):
    monkeypatch.chdir(readme_folder)
    exec(compile(code, "README.md", "exec"), {})
    assert capsys.readouterr().out.strip()


def test_the_readme_examples_read_what_they_show(readme_folder, monkeypatch):
    from digitrec import Recognizer

    monkeypatch.chdir(readme_folder)
    labels = load_dataset("mnist", MNIST_DIR).test_labels[:6]
    recognizer = Recognizer.load("default")
    [digit, number] = recognizer.predict(["digit.png", "number.png"], multi=True)
    assert digit.digit == labels[0] and number.number == "".join(map(str, labels[1:5]))
