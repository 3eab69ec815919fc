"""Ensembles: several networks trained alone, their probabilities averaged, saved as one model.

Members are `cnn` runs that differ only in seed (seed, seed + 1, ...), fixed before training:
none is picked or dropped by its test score. Each member trains into `OUT/member-K/` with the
usual checkpoints, so an ensemble is built over several sessions by running the same command
again; once every member is there they are joined into `OUT/model.keras`. `join_members`
also joins any trained models (`digitrec join`), whatever their recipes.
"""

import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from digitrec.artifact import MODEL_FILE, save_model_dir
from digitrec.checkpoints import CHECKPOINT_INDEX
from digitrec.data import load_dataset
from digitrec.errors import ConfigError
from digitrec.fitting import TrainResult, measure, train_one
from digitrec.models import ensemble
from digitrec.recipes import TrainConfig
from digitrec.recognizer import Recognizer


def train_ensemble(
    config: TrainConfig,
    out_dir: Path | str,
    *,
    data_dir: Path | str | None = None,
    log: Callable[[str], None] = print,
    progress: bool = False,
    tensorboard_dir: Path | str | None = None,
) -> TrainResult:
    """Train `config.members` members, those not finished yet (resuming a stopped one), then join them.

    With `tensorboard_dir`, member K logs into its `member-K` folder: one run each in TensorBoard.
    """
    out_dir = Path(out_dir)
    member_dirs = [out_dir / f"member-{k}" for k in range(config.members)]
    for k, member_dir in enumerate(member_dirs):
        if (member_dir / MODEL_FILE).exists():
            log(f"member {k}: already trained")
            continue
        log(f"member {k}: training {config.model} with seed {config.seed + k}")
        resume = (member_dir / CHECKPOINT_INDEX).exists()
        train_one(
            replace(config, seed=config.seed + k, members=1),
            member_dir,
            data_dir=data_dir,
            resume=resume,
            log=log,
            progress=progress,
            tensorboard_dir=None if tensorboard_dir is None else Path(tensorboard_dir) / member_dir.name,
        )
    return join_members(member_dirs, out_dir, data_dir=data_dir)


def member_labels(member_dirs: list[Path]) -> list[str]:
    """Name each member by its path below the folder all members share.

    Last components alone would collide: `ensemble-v2/seed-5` and `ensemble-warp/seed-5` are
    different models.
    """
    resolved = [Path(d).resolve() for d in member_dirs]
    common = Path(os.path.commonpath(resolved)) if len(resolved) > 1 else resolved[0].parent
    return [d.relative_to(common).as_posix() if d != common else d.name for d in resolved]


def join_members(
    member_dirs: list[Path], out_dir: Path, *, data_dir: Path | str | None = None
) -> TrainResult:
    """Save the average of trained members as one model, with validation and test figures.

    The metadata's `config` holds the settings every member shares; each member's entry holds
    its seed and, under `config`, whatever else it was trained with differently.
    """
    if (Path(out_dir) / MODEL_FILE).exists():
        raise ConfigError(f"{out_dir} already holds a model; choose another --out")
    loaded = [Recognizer.load(d) for d in member_dirs]
    configs = [m.metadata.get("config", {}) for m in loaded]
    shared = {k: v for k, v in configs[0].items() if all(c.get(k) == v for c in configs)}
    for k, member in enumerate(loaded):
        member.keras_model.name = f"member_{k}"  # layer names in one model must be unique
    model = ensemble([member.keras_model for member in loaded])
    dataset = loaded[0].metadata.get("dataset", "mnist")
    data = load_dataset(dataset, data_dir)
    measured = measure(model, data)
    figures = measured["metrics"]
    train_seconds = sum(m.metadata.get("train_seconds", 0.0) for m in loaded)
    save_model_dir(
        model,
        out_dir,
        {
            "model": "ensemble",
            "dataset": dataset,
            "config": shared,
            "members": [
                _member_entry(label, member.metadata, shared)
                for label, member in zip(member_labels(member_dirs), loaded, strict=True)
            ],
            **measured,
            "train_seconds": round(train_seconds, 2),
        },
    )
    return TrainResult(
        out_dir,
        figures["test"]["accuracy"],
        figures["validation"]["accuracy"],
        train_seconds,
        sum(m.metadata.get("epochs", 0) for m in loaded),
        "ensemble",
    )


def _member_entry(label: str, metadata: dict, shared: dict) -> dict:
    """A member in the ensemble's metadata: where it came from, its seed, how it differs, its figures."""
    config, metrics = metadata.get("config", {}), metadata.get("metrics", {})
    return {
        "dir": label,
        "seed": config.get("seed"),
        "config": {k: v for k, v in config.items() if k not in shared and k != "seed"},
        "test_accuracy": metrics.get("test", {}).get("accuracy"),
        "val_accuracy": metrics.get("validation", {}).get("accuracy"),
    }
