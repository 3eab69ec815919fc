import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from digitrec.cli import main
from digitrec.data import load_dataset, scale
from digitrec.synth import PhotoStyle, render_photo

from .conftest import MNIST_DIR, png_header


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


def test_predict_multi_reads_a_number(tmp_path, capsys):
    data = load_dataset("mnist", MNIST_DIR)
    row = [scale(data.test_images[i]) for i in (1, 2)]
    (tmp_path / "number.png").write_bytes(render_photo(row, PhotoStyle(digit_px=100, jpeg_quality=None)))
    assert main(["predict", str(tmp_path / "number.png"), "--multi"]) == 0
    assert f"number {data.test_labels[1]}{data.test_labels[2]}" in capsys.readouterr().out


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

    from digitrec.cli import _HANDLERS
    from digitrec.cli_parser import build_parser

    (commands,) = (a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert set(commands.choices) == set(_HANDLERS)
