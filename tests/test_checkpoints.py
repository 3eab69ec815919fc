import json
import re
from dataclasses import asdict

import keras
import numpy as np
import pytest

from digitrec.checkpoints import (
    CHECKPOINT_INDEX,
    EpochCheckpoint,
    checkpoint_config,
    load_checkpoint,
    read_checkpoint,
    remove_checkpoints,
    start_point,
)
from digitrec.errors import ConfigError
from digitrec.recipes import recipe

HISTORY = [{"epoch": 1, "loss": 0.5, "seconds": 1.0}, {"epoch": 2, "loss": 0.4, "seconds": 1.0}]


def _write_index(out_dir, config, epoch: int = 2, **extra_config) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    index = {
        "epoch": epoch,
        "file": f"epoch-{epoch:04d}.keras",
        "config": {**asdict(config), **extra_config},
        "history": HISTORY[:epoch],
    }
    (out_dir / CHECKPOINT_INDEX).write_text(json.dumps(index))


def test_a_fresh_run_starts_at_epoch_zero_in_a_folder_not_yet_made(tmp_path):
    assert start_point(recipe("softmax"), tmp_path / "new" / "run", resume=False) == (0, [])


def test_a_fresh_run_refuses_a_file_as_its_folder(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("")
    with pytest.raises(ConfigError, match="afile is a file; a run is saved into a directory"):
        start_point(recipe("softmax"), afile, resume=False)


def test_a_fresh_run_refuses_a_folder_holding_a_finished_model(tmp_path):
    (tmp_path / "model.keras").write_bytes(b"weights")
    with pytest.raises(ConfigError, match="already holds a trained model; choose another --out"):
        start_point(recipe("softmax"), tmp_path, resume=False)


def test_a_fresh_run_refuses_a_folder_holding_an_unfinished_run(tmp_path):
    _write_index(tmp_path, recipe("softmax"))
    with pytest.raises(ConfigError, match="holds an unfinished run; pass --resume to continue it"):
        start_point(recipe("softmax"), tmp_path, resume=False)


def test_resuming_returns_the_checkpoints_epoch_and_history(tmp_path):
    config = recipe("softmax", epochs=5)
    _write_index(tmp_path, config, epoch=2)
    assert start_point(config, tmp_path, resume=True) == (2, HISTORY)


def test_reading_a_missing_index_says_there_is_nothing_to_resume(tmp_path):
    where = re.escape(str(tmp_path / CHECKPOINT_INDEX))
    with pytest.raises(ConfigError, match=f"^nothing to resume: {where} does not exist$"):
        read_checkpoint(tmp_path)


def test_a_corrupt_index_is_an_unreadable_checkpoint(tmp_path):
    (tmp_path / CHECKPOINT_INDEX).write_text('{"epoch": 1, "fi')
    with pytest.raises(ConfigError, match=r"checkpoint\.json: unreadable checkpoint index"):
        read_checkpoint(tmp_path)


@pytest.mark.parametrize("content", ["[]", "{}", '{"epoch": 1}'])
def test_an_index_of_the_wrong_shape_is_a_config_error_not_a_crash(tmp_path, content):
    (tmp_path / CHECKPOINT_INDEX).write_text(content)
    with pytest.raises(ConfigError, match=r"checkpoint\.json: not a checkpoint index"):
        checkpoint_config(tmp_path)


def test_a_stored_config_with_fields_this_version_does_not_know_still_loads(tmp_path):
    config = recipe("softmax", epochs=4, seed=9)
    _write_index(tmp_path, config, retired_setting=True)
    assert checkpoint_config(tmp_path) == config


@pytest.mark.parametrize(
    "running", [{"strategy": "multi-worker", "worker_timeout_s": 5.0}, {"strategy": "mirrored"}]
)
def test_a_run_resumes_with_other_running_settings(tmp_path, running):
    _write_index(tmp_path, recipe("cnn", epochs=4))
    assert start_point(recipe("cnn", epochs=4, **running), tmp_path, resume=True)[0] == 2


def test_a_run_refuses_to_resume_with_a_different_setting_naming_it(tmp_path):
    _write_index(tmp_path, recipe("softmax", epochs=4))
    with pytest.raises(ConfigError, match="epochs is 6 here but 4 in the checkpoint"):
        start_point(recipe("softmax", epochs=6), tmp_path, resume=True)


def test_each_epochs_checkpoint_replaces_the_last_and_the_index_names_it(tmp_path):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    config = recipe("softmax", epochs=3)
    checkpoint = EpochCheckpoint(config, tmp_path, HISTORY)
    checkpoint.set_model(model)
    checkpoint.on_epoch_end(0)
    checkpoint.on_epoch_end(1)
    assert sorted(p.name for p in tmp_path.iterdir()) == [CHECKPOINT_INDEX, "epoch-0002.keras"]
    index = read_checkpoint(tmp_path)
    assert (index["epoch"], index["history"], checkpoint_config(tmp_path)) == (2, HISTORY, config)
    restored = load_checkpoint(tmp_path)
    assert np.array_equal(restored.get_weights()[0], model.get_weights()[0])


def test_removing_checkpoints_keeps_the_saved_model(tmp_path):
    _write_index(tmp_path, recipe("softmax"))
    for name in ("epoch-0001.keras", "epoch-0002.keras", "model.keras"):
        (tmp_path / name).write_bytes(b"x")
    remove_checkpoints(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["model.keras"]
