"""The `digitrec` command's flags and their checks; `cli` runs what they ask for."""

import argparse
from pathlib import Path
from typing import NoReturn

DEFAULT_RECIPE = "cnn"


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line, like every other error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"digitrec: error: {message} (see {self.prog} --help)\n")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a number above 0, got {text}")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number from 0 to 65535, got {text}")
    return value


_positive_int.__name__ = _port.__name__ = "whole number"  # argparse names the type in its message
_positive_float.__name__ = "number"


def build_parser() -> argparse.ArgumentParser:
    """The `digitrec` command's flags; `args.command` names the subcommand to run."""
    parser = _Parser(prog="digitrec", description="Handwritten digit recognition on TensorFlow/Keras.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and TensorFlow's log")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_train_command(commands)
    _add_measuring_commands(commands)
    _add_using_commands(commands)
    return parser


def _add_train_command(commands) -> None:
    train = commands.add_parser("train", help="train a model and evaluate it on the test set")
    train.add_argument(
        "--model", help=f"softmax (the tutorial's), mlp, lenet5, fast, {DEFAULT_RECIPE} (default), ensemble"
    )
    train.add_argument(
        "--members", type=_positive_int, metavar="N", help="with --model ensemble: how many (5)"
    )
    _add_schedule_flags(train.add_argument_group("schedule (default: the recipe's)"))
    _add_augment_flags(train.add_argument_group("augmentation (default: the recipe's)"))
    _add_output_flags(train.add_argument_group("output and resuming"))
    _add_distribute_flags(train.add_argument_group("distributed training"))
    _add_data_flags(train)


def _add_schedule_flags(group) -> None:
    group.add_argument("--epochs", type=_positive_int, metavar="N", help="passes over the training images")
    group.add_argument("--batch-size", type=_positive_int, metavar="N", help="images per step")
    group.add_argument("--lr", type=_positive_float, help="learning rate (the peak, for schedules)")
    group.add_argument("--seed", type=int, help="seed of weights, shuffling and augmentation (0)")
    group.add_argument(
        "--patience",
        type=_positive_int,
        metavar="N",
        help="stop after N epochs without better validation, keeping the best epoch's weights",
    )
    group.add_argument(
        "--precision",
        choices=("float32", "mixed_bfloat16"),
        help="mixed_bfloat16: faster on GPUs and CPUs with AVX-512 BF16 or AMX, far slower elsewhere",
    )
    group.add_argument("--ema", type=float, metavar="MOMENTUM", help="save an EMA of the weights, e.g. 0.999")
    group.add_argument("--teacher", metavar="MODEL", help="distil: learn a trained model's probabilities too")
    group.add_argument(
        "--distill-weight", type=float, metavar="W", help="with --teacher: weight of its probabilities (0.5)"
    )


def _add_augment_flags(group) -> None:
    group.add_argument(
        "--augment", action=argparse.BooleanOptionalAction, help="distort the training images (cnn: on)"
    )
    group.add_argument("--rotation", type=float, metavar="DEG", help="rotate up to ± DEG (10)")
    group.add_argument("--shift", type=float, metavar="F", help="shift up to ± F of the size (0.1)")
    group.add_argument("--zoom", type=float, metavar="F", help="zoom in or out up to ± F (0.1)")
    group.add_argument("--shear", type=float, metavar="FACTOR", help="shear too, e.g. 0.2")
    group.add_argument("--elastic", type=float, metavar="ALPHA", help="elastic distortion too, e.g. 34")


def _add_output_flags(group) -> None:
    group.add_argument("--out", type=Path, metavar="DIR", help="model directory (default: runs/MODEL-TIME)")
    group.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    group.add_argument("--tensorboard", type=Path, metavar="DIR", help="write TensorBoard logs to DIR")
    group.add_argument(
        "--train-limit", type=_positive_int, metavar="N", help="train on the first N images (smoke runs)"
    )


def _add_distribute_flags(group) -> None:
    group.add_argument(
        "--strategy",
        default="default",
        choices=["default", "mirrored", "multi-worker"],
        help="tf.distribute: local GPUs (mirrored) or a TF_CONFIG cluster (multi-worker)",
    )
    group.add_argument(
        "--worker-timeout",
        type=_positive_float,
        metavar="S",
        help="multi-worker: fail when a worker is silent this long (default 60)",
    )


def _add_measuring_commands(commands) -> None:
    """join, evaluate, compare and show: commands that build or measure models."""
    join = commands.add_parser("join", help="average trained models' probabilities into one ensemble model")
    join.add_argument("models", nargs="+", type=Path, metavar="MODEL", help="model directories")
    join.add_argument("--out", type=Path, required=True, help="the ensemble's model directory (new or empty)")
    _add_data_flags(join)

    evaluate = commands.add_parser("evaluate", help="evaluate a model on the test set")
    evaluate.add_argument("--model", default="default", help="model directory, .keras file, or bundled name")
    evaluate.add_argument("--split", default="test", choices=["test", "validation"])
    evaluate.add_argument("--report", type=Path, metavar="DIR", help="write report.html with plots into DIR")
    _add_data_flags(evaluate)

    compare = commands.add_parser("compare", help="compare models: accuracy, size, latency, McNemar's test")
    compare.add_argument("models", nargs="+", metavar="MODEL")
    _add_data_flags(compare)

    show = commands.add_parser("show", help="draw a grid of dataset samples")
    show.add_argument("--digit", type=int, choices=range(10), metavar="D", help="only this digit")
    show.add_argument("--n", type=_positive_int, default=64, help="how many (default 64, at most 1024)")
    show.add_argument("--out", type=Path, required=True, help="the PNG to write")
    _add_data_flags(show)


def _add_using_commands(commands) -> None:
    """predict, export and serve: commands that put a trained model to use."""
    predict = commands.add_parser("predict", help="recognize the digits in image files")
    predict.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="image files or directories")
    predict.add_argument("--model", default="default", help="model directory, .keras file, or bundled name")
    predict.add_argument("--top-k", type=_positive_int, metavar="K", help="also list the K likeliest digits")
    predict.add_argument("--multi", action="store_true", help="read several digits: a number")
    predict.add_argument("--json", action="store_true", help="one JSON object per image per line")

    export = commands.add_parser("export", help="export a model: keras, savedmodel, tflite, tflite-int8")
    export.add_argument("--model", default="default", help="model directory, .keras file, or bundled name")
    export.add_argument("--format", required=True, choices=["keras", "savedmodel", "tflite", "tflite-int8"])
    export.add_argument("--out", type=Path, required=True, help="the file (or SavedModel directory) to write")
    export.add_argument("--force", action="store_true", help="replace an existing --out")
    _add_data_flags(export)

    serve = commands.add_parser("serve", help="serve the draw-a-digit page and the HTTP API")
    serve.add_argument("--model", default="default", help="model directory, .keras file, or bundled name")
    serve.add_argument(
        "--host", default="127.0.0.1", help="127.0.0.1 (default); 0.0.0.0 exposes it to the network"
    )
    serve.add_argument("--port", type=_port, default=8000, help="8000 (default); 0 takes any free port")


def _add_data_flags(command) -> None:
    command.add_argument("--dataset", help="mnist (default), fashion-mnist or kmnist")
    command.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        help="the folder holding the dataset's IDX files (or DIR/NAME/); no other place is searched",
    )
    command.add_argument("--json", action="store_true", help="print one JSON object as the last line")
