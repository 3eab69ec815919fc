import json
import subprocess
import sys

import pytest

from digitrec.cli import main

from .conftest import MNIST_DIR


def _last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def test_the_tutorials_program_reaches_90_percent_end_to_end(tmp_path, capsys):
    out = tmp_path / "seed"
    argv = [
        "train",
        "--model",
        "softmax",
        "--epochs",
        "10",
        "--batch-size",
        "100",
        "--lr",
        "0.01",
        "--seed",
        "0",
        "--out",
        str(out),
        "--data-dir",
        str(MNIST_DIR),
        "--json",
    ]
    assert main(argv) == 0
    trained = _last_json(capsys.readouterr().out)
    assert trained["accuracy"] >= 0.90 and trained["model_dir"] == str(out) and trained["train_seconds"] > 0

    assert main(["evaluate", "--model", str(out), "--json"]) == 0
    evaluated = _last_json(capsys.readouterr().out)
    assert evaluated["accuracy"] == trained["accuracy"] and evaluated["n"] == 10000
    assert len(evaluated["confusion"]) == 10 and sum(map(sum, evaluated["confusion"])) == 10000
    assert set(evaluated["per_class"]) == {str(d) for d in range(10)}
    assert {"precision", "recall", "f1"} <= set(evaluated["per_class"]["7"])


def test_evaluate_prints_a_readable_table_without_json(tiny_model_dir, capsys):
    assert main(["evaluate", "--model", str(tiny_model_dir), "--split", "validation"]) == 0
    text = capsys.readouterr().out
    assert "mnist validation: accuracy" in text and "precision" in text and "confusion" in text


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["train", "--epochs", "0"], "argument --epochs: must be a whole number of at least 1, got 0"),
        (["train", "--lr", "abc"], "argument --lr: invalid number value: 'abc'"),
        (["train", "--model", "resnet"], "unknown model 'resnet'; choose one of softmax, mlp"),
        (["train", "--dataset", "emnist", "--model", "fast"], "unknown dataset 'emnist'"),
        (["train", "--resume"], "--resume needs --out DIR"),
        (["evaluate", "--model", "/no/such/model"], "no model at /no/such/model"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(argv, fragment, capsys):
    with pytest.raises(SystemExit) as exited:
        code = main(argv)
        raise SystemExit(code)
    err = capsys.readouterr().err
    assert exited.value.code == 2
    assert err.startswith("digitrec: error: ") and err.count("\n") == 1 and fragment in err


def test_a_corrupt_dataset_is_one_line_and_exit_2(tmp_path, capsys):
    folder = tmp_path / "mnist"
    folder.mkdir()
    for path in MNIST_DIR.glob("*.gz"):
        (folder / path.name).write_bytes(path.read_bytes()[:1000])
    assert main(["train", "--model", "fast", "--data-dir", str(tmp_path), "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "gzip stream is truncated" in err


def test_python_dash_m_runs_the_same_command():
    done = subprocess.run(
        [sys.executable, "-m", "digitrec", "evaluate", "--help"], capture_output=True, text=True
    )
    assert done.returncode == 0 and "--model" in done.stdout and "--json" in done.stdout
