"""Checkpoints: after every epoch the trainer and an index naming it, both written atomically.

A kill at any moment leaves an index that names a complete checkpoint; `start_point` reads it
to resume a run with the configuration it was started with.
"""

import json
from dataclasses import asdict, fields
from pathlib import Path

import keras

from digitrec.artifact import MODEL_FILE
from digitrec.errors import ConfigError
from digitrec.files import atomic_path, atomic_write_text
from digitrec.recipes import RUNNING_SETTINGS, TrainConfig

CHECKPOINT_INDEX = "checkpoint.json"


def start_point(config: TrainConfig, out_dir: Path, resume: bool) -> tuple[int, list[dict]]:
    """The epoch to start from and the history so far: a checkpoint's, or 0 for a fresh run."""
    return _resume_point(config, out_dir) if resume else _fresh_start(out_dir)


class EpochCheckpoint(keras.callbacks.Callback):
    """After each epoch: model and optimizer to `epoch-NNNN.keras`, then the index to point at it.

    Each file is written atomically and the index is replaced only once the new checkpoint is
    whole, so a kill at any moment leaves an index that names a complete checkpoint.
    """

    def __init__(self, config: TrainConfig, out_dir: Path, history: list[dict]):
        super().__init__()
        self.config, self.out_dir, self.history = config, out_dir, history

    def on_epoch_end(self, epoch, logs=None):
        name = f"epoch-{epoch + 1:04d}.keras"
        with atomic_path(self.out_dir / name) as tmp:
            self.model.save(tmp)
        index = {"epoch": epoch + 1, "file": name, "config": asdict(self.config), "history": self.history}
        atomic_write_text(self.out_dir / CHECKPOINT_INDEX, json.dumps(index, indent=1) + "\n")
        for old in self.out_dir.glob("epoch-*.keras"):
            if old.name != name:
                old.unlink(missing_ok=True)


def _fresh_start(out_dir: Path) -> tuple[int, list[dict]]:
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"{out_dir} is a file; a run is saved into a directory: choose another --out")
    if (out_dir / CHECKPOINT_INDEX).exists():
        raise ConfigError(
            f"{out_dir} holds an unfinished run; pass --resume to continue it or choose another --out"
        )
    if (out_dir / MODEL_FILE).exists():
        raise ConfigError(f"{out_dir} already holds a trained model; choose another --out")
    return 0, []


def read_checkpoint(out_dir: Path | str) -> dict:
    """The index of a run's last checkpoint: epoch, file, config and history so far."""
    index = Path(out_dir) / CHECKPOINT_INDEX
    try:
        stored = json.loads(index.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if (index.parent / MODEL_FILE).exists():  # a run's checkpoints are deleted once it is saved
            raise ConfigError(f"nothing to resume: {index.parent} holds a finished model") from None
        raise ConfigError(f"nothing to resume: {index} does not exist") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{index}: unreadable checkpoint index ({exc})") from exc
    if not (isinstance(stored, dict) and {"epoch", "file", "config", "history"} <= set(stored)):
        raise ConfigError(f"{index}: not a checkpoint index (it needs epoch, file, config and history)")
    return stored


def checkpoint_config(out_dir: Path | str) -> TrainConfig:
    """The configuration a checkpointed run was started with."""
    stored = read_checkpoint(out_dir)["config"]
    known = {f.name for f in fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in stored.items() if k in known})


def _resume_point(config: TrainConfig, out_dir: Path) -> tuple[int, list[dict]]:
    index = read_checkpoint(out_dir)
    stored = checkpoint_config(out_dir)
    for field in fields(TrainConfig):
        if field.name in RUNNING_SETTINGS:
            continue
        if getattr(stored, field.name) != getattr(config, field.name):
            raise ConfigError(
                f"cannot resume {out_dir}: {field.name} is {getattr(config, field.name)!r} here "
                f"but {getattr(stored, field.name)!r} in the checkpoint"
            )
    return int(index["epoch"]), list(index["history"])


def load_checkpoint(out_dir: Path) -> keras.Model:
    """The model, optimizer state included, of the run's last checkpoint."""
    return keras.saving.load_model(out_dir / read_checkpoint(out_dir)["file"], safe_mode=True)


def remove_checkpoints(out_dir: Path) -> None:
    """Delete a finished run's checkpoints and their index: the saved model replaces them."""
    for old in out_dir.glob("epoch-*.keras"):
        old.unlink(missing_ok=True)
    (out_dir / CHECKPOINT_INDEX).unlink(missing_ok=True)
