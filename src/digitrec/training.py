"""Training, the one entry point: `train(config)` picks one model, an ensemble or a distributed run.

    from digitrec import recipe, train
    result = train(recipe("fast", seed=0), "runs/fast")
    result.accuracy, result.model_dir

A configuration with `members > 1` trains an ensemble (`digitrec.ensemble`), one with a
`strategy` trains on tf.distribute (`digitrec.distribute`), any other one model
(`digitrec.fitting`). Every run checkpoints each epoch; `resume=True` continues a stopped one.
"""

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from digitrec.checkpoints import CHECKPOINT_INDEX, checkpoint_config
from digitrec.distribute import train_with_strategy
from digitrec.ensemble import train_ensemble
from digitrec.errors import ConfigError
from digitrec.fitting import TrainResult, train_one
from digitrec.recipes import TrainConfig, configure, recipe


def train(
    config: TrainConfig | None = None,
    out_dir: Path | str | None = None,
    *,
    resume: bool = False,
    data_dir: Path | str | None = None,
    log: Callable[[str], None] = print,
    progress: bool = False,
    tensorboard_dir: Path | str | None = None,
) -> TrainResult:
    """Train to `config` (default: the `cnn` recipe) into `out_dir` (default: `runs/NAME-TIME`).

    With `resume`, continue the stopped run in `out_dir`: with the configuration it was started
    with where `config` is None, else with `config`, which must agree with it. An ensemble
    continues its unfinished members whether or not `resume` is set.
    """
    if resume and out_dir is None:
        raise ConfigError("resuming needs the run's folder: pass --out DIR")
    if config is None:
        config = stored_config(out_dir) if resume and out_dir is not None else recipe()
    out = Path(out_dir) if out_dir is not None else default_out_dir(config)
    options: dict[str, Any] = {
        "data_dir": data_dir,
        "log": log,
        "progress": progress,
        "tensorboard_dir": tensorboard_dir,
    }
    if config.members > 1:
        return train_ensemble(config, out, **options)
    if config.strategy != "default":
        return train_with_strategy(config, out, resume=resume, **options)
    return train_one(config, out, resume=resume, **options)


def stored_config(out_dir: Path | str, **overrides: Any) -> TrainConfig:
    """The configuration the stopped run in `out_dir` was started with, with every override that
    is not None applied (as `digitrec.recipes.configure` does)."""
    return configure(checkpoint_config(out_dir), **overrides)


def resumable(out_dir: Path | str) -> bool:
    """Whether `train(..., out_dir, resume=True)` has a checkpoint (or an ensemble member) to go on from."""
    out = Path(out_dir)
    return (out / CHECKPOINT_INDEX).is_file() or any(out.glob("member-*/"))


def default_out_dir(config: TrainConfig) -> Path:
    """`runs/NAME-YYYYmmdd-HHMMSS`, NAME the architecture, or `ensemble`."""
    name = "ensemble" if config.members > 1 else config.model
    return Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
