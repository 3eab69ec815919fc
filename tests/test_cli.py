import io
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from digitrec.cli import main
from digitrec.data import load_dataset, scale
from digitrec.synth import PhotoStyle, render_photo

from .conftest import MNIST_DIR, png_header

BIN = Path(sys.executable).parent  # the venv's scripts: digitrec


def _last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def test_the_tutorials_program_reaches_90_percent_end_to_end(tmp_path, capsys):
    out = tmp_path / "seed"
    argv = [
        "train",
        "--recipe",
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
        (["train", "--epochs", "0"], "epochs must be a whole number from 1 to 1,000,000, got 0"),
        (["train", "--seed", "-1"], "seed must be a whole number from 0 to 2**32 - 1, got -1"),
        (["train", "--lr", "abc"], "argument --lr: invalid float value: 'abc'"),
        (["train", "--recipe", "resnet"], "argument --recipe: invalid choice: 'resnet'"),
        (["train", "--dataset", "emnist", "--recipe", "fast"], "unknown dataset 'emnist'"),
        (["train", "--resume"], "resuming needs the run's folder: pass --out DIR"),
        (["train", "--recipe", "ensemble", "--resume"], "resuming needs the run's folder: pass --out DIR"),
        (["serve", "--port", "70000"], "port must be a number from 0 to 65535"),
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


def test_a_file_where_a_folder_belongs_is_one_line_and_kept(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    assert main(["train", "--recipe", "softmax", "--out", str(afile)]) == 2
    assert capsys.readouterr().err == (
        f"digitrec: error: {afile} is a file; a run is saved into a directory: choose another --out\n"
    )
    assert main(["train", "--recipe", "softmax", "--epochs", "1", "--out", str(afile / "run")]) == 2
    assert capsys.readouterr().err == f"digitrec: error: {afile / 'run'}: Not a directory\n"
    assert main(["show", "--n", "5000", "--out", str(tmp_path / "grid.png")]) == 2
    assert capsys.readouterr().err == "digitrec: error: a grid shows 1 to 1024 images, not 5000\n"
    assert afile.read_text() == "keep me" and not (tmp_path / "grid.png").exists()


def test_a_corrupt_dataset_is_one_line_and_exit_2(tmp_path, capsys):
    folder = tmp_path / "mnist"
    folder.mkdir()
    for path in MNIST_DIR.glob("*.gz"):
        (folder / path.name).write_bytes(path.read_bytes()[:1000])
    assert main(["train", "--recipe", "fast", "--data-dir", str(tmp_path), "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "gzip stream is truncated" in err


def test_python_dash_m_runs_the_same_command():
    done = subprocess.run(
        [sys.executable, "-m", "digitrec", "evaluate", "--help"], capture_output=True, text=True
    )
    assert done.returncode == 0 and "--model" in done.stdout and "--json" in done.stdout


def _write_photos(folder, count: int = 3):
    data = load_dataset("mnist", MNIST_DIR)
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        photo = render_photo(scale(data.test_images[i]), PhotoStyle.random(rng), seed=i)
        (folder / f"digit-{i}.png").write_bytes(photo)
    return data.test_labels[:count]


def test_predict_answers_one_json_line_per_image_found_under_a_directory(tmp_path, capsys):
    labels = _write_photos(tmp_path / "photos" / "sub")
    (tmp_path / "photos" / "notes.txt").write_text("not an image")
    assert main(["predict", str(tmp_path / "photos"), "--json", "--top-k", "3"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["digit"] for line in lines] == list(labels)
    assert {"path", "digit", "confidence", "probabilities", "uncertain", "top_k"} <= set(lines[0])
    assert len(lines[0]["probabilities"]) == 10 and len(lines[0]["top_k"]) == 3


def test_predict_reports_an_unreadable_file_and_answers_the_others(tmp_path, capsys):
    _write_photos(tmp_path, count=2)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    files = sorted(str(p) for p in tmp_path.glob("*.png"))
    assert main(["predict", *files, "--json"]) == 2
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 2
    prefix = f"digitrec: error: {tmp_path / 'broken.png'}: not a readable image ("
    assert (
        captured.err.startswith(prefix)
        and captured.err.count("\n") == 1
        and captured.err.count("broken") == 1
    )


def test_predict_refuses_a_decompression_bomb_with_its_own_limit(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)  # main() sets it
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_header(10_000, 10_000))  # 100 megapixels: Pillow's default only warns
    assert main(["predict", str(bomb)]) == 2
    assert capsys.readouterr().err == (
        f"digitrec: error: {bomb}: more than 80,000,000 pixels, over the 40,000,000-pixel limit\n"
    )


def _write_number(path, indices=(1, 2)) -> str:
    data = load_dataset("mnist", MNIST_DIR)
    row = [scale(data.test_images[i]) for i in indices]
    path.write_bytes(render_photo(row, PhotoStyle(digit_px=100, jpeg_quality=None)))
    return "".join(str(data.test_labels[i]) for i in indices)


def test_predict_multi_leads_with_the_number_and_its_confidence_then_a_line_per_digit(tmp_path, capsys):
    number = _write_number(tmp_path / "number.png")
    assert main(["predict", str(tmp_path / "number.png"), "--multi"]) == 0
    head, *digits = capsys.readouterr().out.splitlines()
    assert head.startswith(f"{tmp_path / 'number.png'}: {number} (0.")
    assert head.endswith(", the product of its 2 digits' confidences)")
    assert [line.split()[0] for line in digits] == list(number) and all(" at (" in line for line in digits)


def test_predict_multi_json_has_the_number_first_and_no_one_digit_guess(tmp_path, capsys):
    number = _write_number(tmp_path / "number.png")
    assert main(["predict", str(tmp_path / "number.png"), "--multi", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert list(record)[:4] == ["path", "number", "confidence", "confidence_of"]
    assert record["number"] == number and "digit" not in record and "probabilities" not in record
    product = record["digits"][0]["confidence"] * record["digits"][1]["confidence"]
    assert record["confidence"] == pytest.approx(product, abs=1e-5)


def test_predict_without_multi_says_an_image_looks_like_several_digits(tmp_path, capsys):
    _write_number(tmp_path / "number.png", (1, 2, 3))
    assert main(["predict", str(tmp_path / "number.png")]) == 0
    assert capsys.readouterr().out.rstrip().endswith("uncertain: looks like 3 digits; use --multi")
    assert main(["predict", str(tmp_path / "number.png"), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["uncertain"] is True and record["reason"] == "looks like 3 digits"


def test_predict_with_no_images_is_a_user_error(tmp_path, capsys):
    assert main(["predict", str(tmp_path)]) == 2
    assert "no image files" in capsys.readouterr().err


def test_train_ensemble_from_the_command_line(tmp_path, small_mnist_dir, capsys):
    out = tmp_path / "ens"
    argv = ["train", "--recipe", "ensemble", "--members", "2", "--epochs", "1", "--out", str(out), "--json"]
    assert main([*argv, "--data-dir", str(small_mnist_dir)]) == 0
    summary = _last_json(capsys.readouterr().out)
    assert summary["model"] == "ensemble" and summary["model_dir"] == str(out)
    assert sorted(p.name for p in out.glob("member-*")) == ["member-0", "member-1"]
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["model"] == "ensemble" and metadata["metrics"]["test"]["n"] == 1000
    assert [m["config"] for m in metadata["members"]] == [{}, {}]  # both the `cnn` recipe, seeds 0 and 1


def test_join_names_what_each_member_was_trained_with(tiny_model_dir, tmp_path, capsys):
    for k in (0, 1):
        shutil.copytree(tiny_model_dir, tmp_path / f"member-{k}")
    # As if member 1 had been trained with elastic distortion: the joined metadata says so.
    metadata_path = tmp_path / "member-1" / "metadata.json"
    metadata = json.loads(metadata_path.read_text())
    metadata["config"].update(elastic_alpha=34.0, seed=1)
    metadata_path.write_text(json.dumps(metadata))
    joined = tmp_path / "joined"
    assert (
        main(["join", str(tmp_path / "member-1"), str(tmp_path / "member-0"), "--out", str(joined), "--json"])
        == 0
    )
    assert _last_json(capsys.readouterr().out)["model"] == "ensemble"
    joined_metadata = json.loads((joined / "metadata.json").read_text())
    members = joined_metadata["members"]
    assert [m["dir"] for m in members] == ["member-1", "member-0"] and [m["seed"] for m in members] == [1, 0]
    assert [m["config"] for m in members] == [{"elastic_alpha": 34.0}, {"elastic_alpha": 0.0}]
    assert joined_metadata["config"]["epochs"] == 1 and "seed" not in joined_metadata["config"]
    assert main(["join", str(tmp_path / "member-0"), "--out", str(joined)]) == 2
    assert "already holds a model; choose another --out" in capsys.readouterr().err


def _train_config_of(argv: str):
    """The configuration `digitrec ARGV` would train with."""
    from digitrec.cli import _train_config
    from digitrec.cli_parser import build_parser

    return _train_config(build_parser().parse_args(argv.split()))


def test_training_flags_reach_the_configuration():
    config = _train_config_of(
        "train --recipe cnn --rotation 20 --shift 0.2 --zoom 0.15 --shear 0.2 --elastic 34 --ema 0.999"
    )
    assert (config.rotation_deg, config.shift, config.zoom, config.shear) == (20.0, 0.2, 0.15, 0.2)
    assert (config.elastic_alpha, config.ema_momentum, config.epochs) == (34.0, 0.999, 30)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            "--recipe mlp --rotation 15",
            "--rotation (rotation_deg) is augmentation, but this run does not augment: add --augment",
        ),
        (
            "--no-augment --elastic 34",
            "--elastic (elastic_alpha) is augmentation, but this run does not augment: add --augment",
        ),
        (
            "--distill-weight 0.3",
            "--distill-weight (distill_weight) weighs a teacher's probabilities: add --teacher MODEL",
        ),
        ("--worker-timeout 10", "--worker-timeout (worker_timeout_s) is for --strategy multi-worker"),
        (
            "--recipe ensemble --strategy mirrored",
            "a strategy trains one model; an ensemble (members > 1) trains its members one by one",
        ),
        (
            "--strategy mirrored --tensorboard tb",
            "tf.distribute's training loop writes no TensorBoard logs; drop --tensorboard",
        ),
    ],
)
def test_a_flag_the_run_would_ignore_is_refused(flags, message, tmp_path, capsys):
    assert main(["train", *flags.split(), "--out", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err.strip() == f"digitrec: error: {message}"
    assert not (tmp_path / "run").exists()


def test_augment_turns_augmentation_on_and_off():
    mlp = _train_config_of("train --recipe mlp --augment --rotation 15")
    assert (mlp.augment, mlp.rotation_deg) == (True, 15.0)
    assert _train_config_of("train --recipe cnn").augment
    assert not _train_config_of("train --recipe cnn --no-augment").augment


def test_members_make_an_ensemble_of_any_recipe():
    assert _train_config_of("train --recipe fast --members 3").members == 3
    assert _train_config_of("train --recipe ensemble").members == 5


def test_train_model_still_names_a_recipe_but_says_it_is_deprecated(capsys):
    assert _train_config_of("train --model mlp").model == "mlp"
    assert capsys.readouterr().err == "digitrec: warning: train --model is deprecated; use --recipe\n"


def test_an_ensemble_resumes_with_or_without_resume(tmp_path):
    # Its members check their own checkpoints against this configuration as they resume.
    config = _train_config_of(f"train --recipe ensemble --resume --out {tmp_path}")
    assert (config.model, config.epochs, config.members) == ("cnn", 30, 5)


def test_every_command_the_parser_offers_has_a_handler():
    import argparse

    from digitrec import cli
    from digitrec.cli_parser import build_parser

    (commands,) = (a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert all(callable(getattr(cli, f"_{command}", None)) for command in commands.choices)


REFUSED = [
    (["predict", "missing.png"], "missing.png: no such file"),
    (["predict", "notes.txt"], "notes.txt: not a readable image (not PNG, JPEG"),
    (["evaluate", "--model", "nope"], "no model at nope; pass a model directory"),
]


@pytest.mark.parametrize(("argv", "message"), REFUSED)
def test_a_user_error_is_said_in_its_own_process_without_loading_tensorflow(argv, message, tmp_path):
    (tmp_path / "notes.txt").write_text("not an image")
    script = (
        f"import json, sys; from digitrec.cli import main; main({argv}); print(json.dumps([*sys.modules]))"
    )
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    seconds = time.perf_counter() - started
    assert done.stderr.startswith(f"digitrec: error: {message}") and done.stderr.count("\n") == 1
    assert not {"tensorflow", "keras", "scipy"} & set(json.loads(done.stdout))
    assert seconds < 3  # generous for a busy machine; benchmarks/cli_latency.py holds the 0.5 s bar


def test_predict_says_which_files_are_not_images_before_loading_the_model(tmp_path, capsys, monkeypatch):
    from digitrec.recognizer import Recognizer

    monkeypatch.setattr(Recognizer, "load", lambda *_: pytest.fail("the model was loaded"))
    (tmp_path / "notes.txt").write_text("not an image")
    assert main(["predict", str(tmp_path / "missing.png"), str(tmp_path / "notes.txt")]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"digitrec: error: {tmp_path / 'missing.png'}: no such file",
        f"digitrec: error: {tmp_path / 'notes.txt'}: not a readable image (not PNG, JPEG, BMP, GIF, WEBP, "
        "TIFF)",
    ]


@pytest.mark.parametrize(
    ("argv", "guess"),
    [
        (["trian"], "invalid choice: 'trian' (choose from 'train', "),
        (["train", "--recipe", "cnnn"], "; did you mean cnn? (see digitrec train --help)"),
        (["train", "--epcohs", "3"], "unrecognized arguments: --epcohs 3; did you mean --epochs?"),
        (["predict", "a.png", "--mutli"], "unrecognized arguments: --mutli; did you mean --multi?"),
        (["evaluate", "--model", "defualt"], "default-int8; did you mean default?"),
    ],
)
def test_a_misspelt_command_flag_or_model_gets_a_did_you_mean(argv, guess, capsys):
    with pytest.raises(SystemExit) as exited:
        raise SystemExit(main(argv))
    err = capsys.readouterr().err
    assert exited.value.code == 2 and err.count("\n") == 1 and guess in err
    assert "did you mean" in err


def test_a_folder_or_file_that_is_no_model_is_refused_naming_the_forms(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("a model")
    assert main(["evaluate", "--model", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        f"digitrec: error: {tmp_path}: no model.keras or saved_model.pb in this folder; pass a model "
        "directory, a .keras or .tflite file, a SavedModel directory\n"
    )
    assert main(["evaluate", "--model", str(tmp_path / "notes.txt")]) == 2
    assert "notes.txt: not a model file; pass a model directory" in capsys.readouterr().err


def test_version_is_the_installed_packages(capsys):
    from importlib.metadata import version

    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0 and capsys.readouterr().out == f"digitrec {version('digitrec')}\n"


def _interrupt_after_a_checkpoint(config, out_dir, **_):
    Path(out_dir).mkdir(parents=True)
    (Path(out_dir) / "checkpoint.json").write_text("{}")
    raise KeyboardInterrupt


def test_ctrl_c_in_training_prints_the_command_that_resumes_the_run(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("digitrec.training.train", _interrupt_after_a_checkpoint)
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--recipe", "fast", "--epochs", "3"]) == 130
    [run] = (tmp_path / "runs").iterdir()
    assert capsys.readouterr().err == (
        "digitrec: interrupted; resume with: digitrec train --recipe fast --epochs 3 "
        f"--out runs/{run.name} --resume\n"
    )
    assert main(["train", "--recipe", "fast", "--out", "my run", "--resume"]) == 130
    assert capsys.readouterr().err.endswith("with: digitrec train --recipe fast --out 'my run' --resume\n")


def test_ctrl_c_before_the_first_checkpoint_says_there_is_nothing_to_resume(tmp_path, capsys, monkeypatch):
    def interrupt(config, out_dir, **_):
        raise KeyboardInterrupt

    monkeypatch.setattr("digitrec.training.train", interrupt)
    assert main(["train", "--recipe", "fast", "--out", str(tmp_path / "run")]) == 130
    assert capsys.readouterr().err == "digitrec: interrupted before the first checkpoint: nothing to resume\n"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_training_in_a_terminal_shows_a_bar_per_step(tmp_path, small_mnist_dir, monkeypatch):
    monkeypatch.setattr(sys, "stdout", _Terminal())  # what the CLI and Keras's bar both ask
    argv = ["train", "--recipe", "fast", "--epochs", "1", "--train-limit", "512", "--batch-size", "128"]
    assert main([*argv, "--out", str(tmp_path / "run"), "--data-dir", str(small_mnist_dir)]) == 0
    screen = sys.stdout.getvalue()
    assert all(f"\r\x1b[1m{step}/4\x1b[0m" in screen for step in (1, 4))  # Keras's bar, redrawn per step
    assert "/step - accuracy: " in screen and "\nepoch 1/1  loss " in screen  # the epoch's line: its own


def test_corrections_are_kept_listed_exported_and_forgotten(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DIGITREC_HOME", str(tmp_path / "home"))
    seven = tmp_path / "seven.png"
    seven.write_bytes(render_photo(scale(load_dataset("mnist", MNIST_DIR).test_images[0]), PhotoStyle()))
    assert main(["predict", str(seven), "--correct", "1", "--profile", "ada"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"{seven}: 7 (")
    kept = "kept as a correction to profile 'ada' (1 in all); digitrec adapt --profile ada learns from them"
    assert err == f"digitrec: {kept}\n"
    assert main(["corrections"]) == 0 and capsys.readouterr().out == "ada: 1 correction\n"
    assert main(["corrections", "--profile", "ada", "--export", str(tmp_path / "out"), "--json"]) == 0
    assert _last_json(capsys.readouterr().out)["exported"] == 1
    assert (tmp_path / "out" / "labels.csv").read_text().splitlines() == ["file,label", "00000.png,1"]
    assert main(["corrections", "--profile", "ada", "--forget"]) == 0
    assert main(["corrections"]) == 0 and capsys.readouterr().out.endswith(
        "no corrections yet in " + str(tmp_path / "home" / "corrections.sqlite3") + "\n"
    )


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["predict", "a.png", "b.png", "--correct", "3"], "one image of one digit"),
        (["predict", "a.png", "--correct", "3", "--multi"], "one image of one digit"),
        (["adapt", "--profile", "nobody"], "expected at least 10 examples to adapt to, got 0"),
        (["corrections", "--forget"], "--export and --forget need --profile NAME"),
        (["corrections", "--profile", "../up"], "profile"),
        (["predict", "a.png", "--model", "profile:nobody"], "no model adapted to profile 'nobody' yet"),
    ],
)
def test_profile_errors_are_one_line_and_exit_2(argv, fragment, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DIGITREC_HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("digitrec: error: ") and err.count("\n") == 1 and fragment in err, err


def test_a_corrupt_corrections_store_is_one_line_and_left_as_it_was(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DIGITREC_HOME", str(tmp_path))
    store = tmp_path / "corrections.sqlite3"
    store.write_bytes(b"not a database, but someone's only copy")
    assert main(["corrections"]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"digitrec: error: {store}: not a readable corrections store (file is not a database); "
        "restore it from a backup, or move it aside to start a new one\n"
    )
    assert store.read_bytes() == b"not a database, but someone's only copy"
