import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from digitrec import models
from digitrec.data import load_dataset, scale
from digitrec.errors import ConfigError
from digitrec.fitting import training_arrays
from digitrec.recipes import recipe
from digitrec.recognizer import Recognizer
from digitrec.training import train


def _quiet(line: str) -> None:
    pass


def test_the_tutorials_recipe_is_the_default_for_softmax():
    config = recipe("softmax")
    assert (config.lr, config.batch_size, config.epochs, config.optimizer) == (0.01, 100, 10, "sgd")
    assert (config.schedule, config.augment, config.test_every) == ("constant", False, 2)


def test_overrides_apply_and_none_keeps_the_recipe():
    assert recipe("fast", epochs=5, lr=None).epochs == 5 and recipe("fast", lr=None).lr == 0.01


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("epochs", 0, "epochs must be a whole number from 1"),
        ("members", 0, "members must be a whole number from 1"),
        ("seed", 2**32, "seed must be a whole number from 0 to 2"),
        ("worker_timeout_s", 0.0, "worker_timeout_s must be above 0"),
        ("strategy", "ring", "strategy one of"),
        ("lr", -1.0, "lr must be in"),
        ("optimizer", "lbfgs", "optimizer must be one of"),
        ("precision", "float16", "precision must be one of"),
        ("distill_weight", 1.5, "distill_weight must be in"),
        ("elastic_alpha", -1.0, "elastic_alpha must be >= 0"),
        ("shear", 1.5, "shear, shift and zoom must be in"),
        ("zoom", -0.1, "shift and zoom must be in"),
        ("rotation_deg", 200.0, "rotation_deg must be in"),
    ],
)
def test_bad_values_are_refused(field, value, message):
    with pytest.raises(ConfigError, match=message):
        recipe("mlp", **{field: value})


def test_the_same_seed_gives_the_same_model(tmp_path):
    images = np.random.default_rng(0).random((8, 28, 28), np.float32)
    probs = []
    for run in ("a", "b"):
        train(recipe("mlp", epochs=1, train_limit=1000, seed=3), tmp_path / run, log=_quiet)
        probs.append(Recognizer.load(tmp_path / run).predict_proba(images))
    assert np.allclose(probs[0], probs[1], atol=1e-5)


def test_training_writes_history_and_reports_the_tutorials_test_accuracy(tmp_path):
    lines: list[str] = []
    result = train(recipe("softmax", epochs=2, train_limit=3000), tmp_path / "m", log=lines.append)
    history = json.loads((tmp_path / "m" / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2] and {"loss", "val_accuracy", "lr", "seconds"} <= set(
        history[0]
    )
    assert lines[-1] == f"epoch 2: test accuracy {result.accuracy:.4f}"
    assert (
        not list((tmp_path / "m").glob("epoch-*.keras")) and not (tmp_path / "m" / "checkpoint.json").exists()
    )


def test_a_finished_model_is_never_overwritten_nor_resumed(tmp_path, tiny_model_dir):
    before = (tiny_model_dir / "model.keras").read_bytes()
    config = recipe("softmax", epochs=1, train_limit=500)
    where = re.escape(str(tiny_model_dir))
    with pytest.raises(ConfigError, match=f"^{where} already holds a trained model; choose another --out$"):
        train(config, tiny_model_dir, log=_quiet)
    with pytest.raises(ConfigError, match=f"^nothing to resume: {where} holds a finished model$"):
        train(config, tiny_model_dir, resume=True, log=_quiet)
    assert (tiny_model_dir / "model.keras").read_bytes() == before


def _wait_for(path, process, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"no {path} after {timeout_s} s"
        time.sleep(0.05)


def test_a_run_killed_after_its_first_checkpoint_resumes_and_finishes(tmp_path):
    out = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "digitrec",
        "train",
        "--recipe",
        "fast",
        "--epochs",
        "3",
        "--train-limit",
        "4000",
        "--out",
        str(out),
        "--json",
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(out / "checkpoint.json", process)
    os.kill(process.pid, signal.SIGKILL)
    process.communicate()
    assert not (out / "model.keras").exists()
    done_before = json.loads((out / "checkpoint.json").read_text())["epoch"]
    with pytest.raises(ConfigError, match="holds an unfinished run; pass --resume to continue it"):
        train(recipe("fast", epochs=3, train_limit=4000), out, log=_quiet)

    resumed = subprocess.run(
        [*command[:3], "train", "--resume", "--out", str(out), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming from the checkpoint after epoch {done_before} of 3" in resumed.stderr
    assert "oneDNN" not in resumed.stderr and "absl" not in resumed.stderr
    summary = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert summary["epochs"] == 3 and summary["model"] == "fast"
    assert [h["epoch"] for h in json.loads((out / "history.json").read_text())] == [1, 2, 3]


def test_resume_refuses_a_changed_configuration(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    config = recipe("fast", train_limit=100)
    (out / "checkpoint.json").write_text(
        json.dumps({"epoch": 1, "file": "epoch-0001.keras", "config": vars(config), "history": []})
    )
    with pytest.raises(ConfigError, match=r"lr is 0\.5 here but 0\.01 in the checkpoint"):
        train(recipe("fast", train_limit=100, lr=0.5), out, resume=True, log=_quiet)


def test_an_ensemble_trains_its_members_then_averages_them(tmp_path):
    lines: list[str] = []
    config = recipe("softmax", epochs=1, train_limit=1500, test_every=0, members=2)
    result = train(config, tmp_path / "ens", log=lines.append, tensorboard_dir=tmp_path / "tb")
    assert all(list((tmp_path / "tb" / f"member-{k}").rglob("events.out.tfevents.*")) for k in (0, 1))
    metadata = json.loads((tmp_path / "ens" / "metadata.json").read_text())
    assert metadata["model"] == "ensemble" and [m["seed"] for m in metadata["members"]] == [0, 1]
    assert metadata["metrics"]["test"]["accuracy"] == result.accuracy > 0.5
    images = np.random.default_rng(0).random((3, 28, 28), np.float32)
    # The members' own answers are averaged; each model's temperature applies to its answers alone.
    loaded = [Recognizer.load(tmp_path / "ens" / f"member-{k}") for k in (0, 1)] + [
        Recognizer.load(tmp_path / "ens")
    ]
    for recognizer in loaded:
        recognizer.temperature = 1.0
    *members, joined = (recognizer.predict_proba(images) for recognizer in loaded)
    assert np.allclose(joined, np.mean(members, axis=0), atol=1e-6)

    lines.clear()
    (tmp_path / "ens" / "model.keras").unlink()
    (tmp_path / "ens" / "metadata.json").unlink()
    train(config, tmp_path / "ens", log=lines.append)
    assert lines == ["member 0: already trained", "member 1: already trained"]


def test_early_stopping_ends_a_run_that_stopped_improving(tmp_path):
    # A learning rate this small leaves the zero weights all but untouched: validation never improves.
    result = train(
        recipe("softmax", epochs=6, lr=1e-12, patience=1, train_limit=1000), tmp_path / "m", log=_quiet
    )
    assert result.epochs == 2


def test_tensorboard_logs_are_written_where_asked(tmp_path):
    train(
        recipe("softmax", epochs=1, train_limit=500),
        tmp_path / "m",
        log=_quiet,
        tensorboard_dir=tmp_path / "tb",
    )
    assert list((tmp_path / "tb").rglob("events.out.tfevents.*"))


def test_tensorboard_logs_without_tensorflow_are_refused_before_training(tmp_path, monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: None if name == "tensorflow" else find_spec(name)
    )
    with pytest.raises(
        ConfigError, match="TensorBoard logs are written with TensorFlow, which is not installed"
    ):
        train(
            recipe("softmax", epochs=1, train_limit=500),
            tmp_path / "m",
            log=_quiet,
            tensorboard_dir=tmp_path / "tb",
        )
    assert not (tmp_path / "m").exists() and not (tmp_path / "tb").exists()


def test_a_tensorboard_folder_that_cannot_be_made_is_one_line_before_training(tmp_path, capsys):
    from digitrec.cli import main

    (tmp_path / "a-file").write_text("kept")
    logs = tmp_path / "a-file" / "tb"
    command = ["train", "--recipe", "softmax", "--epochs", "1", "--out", str(tmp_path / "m")]
    assert main([*command, "--tensorboard", str(logs)]) == 2
    assert capsys.readouterr().err == f"digitrec: error: {logs}: Not a directory\n"
    assert list((tmp_path / "m").iterdir()) == [] and (tmp_path / "a-file").read_text() == "kept"


def test_an_ema_of_the_weights_is_what_gets_saved(tmp_path):
    weights = []
    for name, ema in (("plain", 0.0), ("ema", 0.9)):
        train(recipe("softmax", epochs=1, train_limit=2000, ema_momentum=ema), tmp_path / name, log=_quiet)
        weights.append(Recognizer.load(tmp_path / name).keras_model.get_weights()[0])
    assert not np.allclose(weights[0], weights[1]) and np.abs(weights[1]).max() > 0


def test_a_model_trained_in_mixed_precision_is_saved_in_float32(tmp_path, monkeypatch):
    monkeypatch.setattr(models, "bfloat16_is_emulated", lambda: True)  # as on an AVX2-only CPU
    lines: list[str] = []
    result = train(
        recipe("fast", epochs=1, train_limit=3000, precision="mixed_bfloat16"),
        tmp_path / "m",
        log=lines.append,
    )
    saved = Recognizer.load(tmp_path / "m")
    assert {layer.compute_dtype for layer in saved.keras_model.layers if layer.weights} == {"float32"}
    assert saved.metadata["config"]["precision"] == "mixed_bfloat16" and result.accuracy > 0.8
    assert lines[0].startswith("warning: this machine has no bfloat16 units")


def test_a_teachers_probabilities_are_mixed_into_the_targets(tiny_model_dir):
    data = load_dataset("mnist")
    plain_images, labels = training_arrays(recipe("fast", train_limit=300), data)
    images, targets = training_arrays(
        recipe("fast", train_limit=300, teacher=str(tiny_model_dir), distill_weight=0.25), data
    )
    taught = Recognizer.load(tiny_model_dir).predict_proba(scale(plain_images))
    assert np.array_equal(images, plain_images)
    assert np.allclose(targets, 0.75 * labels + 0.25 * taught, atol=1e-6)
    assert np.allclose(targets.sum(axis=1), 1.0, atol=1e-5) and not np.allclose(targets, labels)


def test_a_student_trains_from_its_teacher(tmp_path, tiny_model_dir):
    config = recipe("fast", epochs=1, train_limit=3000, teacher=str(tiny_model_dir))
    result = train(config, tmp_path / "student", log=_quiet)
    assert Recognizer.load(tmp_path / "student").metadata["config"]["teacher"] == str(tiny_model_dir)
    assert result.accuracy > 0.8
