"""The `digitrec` command's flags; `cli` runs what they ask for. `train`'s are made from
`TrainConfig`'s fields, where each default and its help are written once; other checks are the library's."""

import argparse
import re
from dataclasses import fields
from pathlib import Path
from typing import NoReturn

from digitrec import __version__
from digitrec.artifact import BUNDLED, MODEL_FORMS
from digitrec.errors import did_you_mean
from digitrec.recipes import RECIPES, TrainConfig, flag_of

MODEL_HELP = f"{MODEL_FORMS}, or a bundled name: {', '.join(BUNDLED)} (default: default)"
TRUST_HELP = "load a SavedModel, or a .tflite without its sidecar (either can run code)"


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line, like every other error, guessing a misspelt choice."""

    def error(self, message: str) -> NoReturn:
        if bad := re.search(r"invalid choice: (.*?) \(choose from (.*)\)$", message):
            message += did_you_mean(bad[1].strip("'"), [c.strip("'") for c in bad[2].split(", ")])
        elif bad := re.search(r"unrecognized arguments:.*? (-[^\s=]+)", message):
            message += did_you_mean(bad[1], [flag for a in self._actions for flag in a.option_strings])
        self.exit(2, f"digitrec: error: {message} (see {self.prog} --help)\n")

    def parse_known_args(self, args=None, namespace=None):
        parsed, unknown = super().parse_known_args(args, namespace)
        if unknown and self.prog != "digitrec":
            self.error(f"unrecognized arguments: {' '.join(unknown)}")
        return parsed, unknown


def build_parser() -> argparse.ArgumentParser:
    """The `digitrec` command's flags; `args.command` names the subcommand to run."""
    parser = _Parser(prog="digitrec", description="Handwritten digit recognition on TensorFlow/Keras.")
    parser.add_argument("--version", action="version", version=f"digitrec {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and TensorFlow's log")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    train = commands.add_parser("train", help="train a model and evaluate it on the test set")
    train.add_argument("--recipe", choices=list(RECIPES), help="what to train (default: cnn)")
    train.add_argument("--model", dest="recipe_alias", choices=list(RECIPES), help=argparse.SUPPRESS)
    train.add_argument("--out", type=Path, metavar="DIR", help="model directory (default: runs/NAME-TIME)")
    train.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    train.add_argument("--tensorboard", type=Path, metavar="DIR", help="write TensorBoard logs to DIR")
    settings = train.add_argument_group("settings (default: the recipe's)")
    for setting in (field for field in fields(TrainConfig) if "help" in field.metadata):
        bool_flag = {"action": argparse.BooleanOptionalAction}
        kind: dict = bool_flag if setting.type is bool else {"type": setting.type}
        settings.add_argument(
            flag_of(setting.name),
            dest=setting.name,
            **kind,
            choices=setting.metadata["choices"] or None,
            help=f"{setting.metadata['help']} (cnn: {setting.default!r})",
            metavar=None if setting.type is bool or setting.metadata["choices"] else setting.name.upper(),
        )
    _add_data_flags(train, dataset=False)
    _add_other_commands(commands)
    return parser


def _add_other_commands(commands) -> None:
    join = commands.add_parser("join", help="average trained models' probabilities into one ensemble model")
    join.add_argument("models", nargs="+", type=Path, metavar="MODEL", help="model directories")
    join.add_argument("--out", type=Path, required=True, help="the ensemble's model directory")
    _add_data_flags(join)

    evaluate = commands.add_parser("evaluate", help="evaluate a model on the test set")
    _add_model_flags(evaluate)
    evaluate.add_argument("--split", default="test", choices=["test", "validation"])
    evaluate.add_argument("--report", type=Path, metavar="DIR", help="write report.html with plots into DIR")
    _add_data_flags(evaluate)

    compare = commands.add_parser("compare", help="compare models: accuracy, size, latency, McNemar's test")
    compare.add_argument("models", nargs="+", metavar="MODEL", help=MODEL_HELP)
    compare.add_argument("--trust-model", action="store_true", help=TRUST_HELP)
    compare.add_argument("--report", type=Path, metavar="DIR", help="write report.html into DIR")
    _add_data_flags(compare)

    show = commands.add_parser("show", help="draw a grid of dataset samples")
    show.add_argument("--digit", type=int, choices=range(10), metavar="D", help="only this digit")
    show.add_argument("--n", type=int, default=64, help="how many (default 64, at most 1024)")
    show.add_argument("--out", type=Path, required=True, help="the PNG to write")
    _add_data_flags(show)

    predict = commands.add_parser("predict", help="recognize the digits in image files")
    predict.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="image files or directories")
    _add_model_flags(predict)
    predict.add_argument("--top-k", type=int, choices=range(1, 11), metavar="K", help="and the K likeliest")
    predict.add_argument("--multi", action="store_true", help="read several digits: a number")
    predict.add_argument("--json", action="store_true", help="one JSON object per image per line")
    correct_help = "the right digit: keep this reading as a correction that adapt learns from"
    predict.add_argument("--correct", type=int, choices=range(10), metavar="DIGIT", help=correct_help)
    _add_profile_flag(predict)

    adapt = commands.add_parser(
        "adapt", help="adapt a model to a profile's handwriting, from its corrections"
    )
    _add_profile_flag(adapt)
    examples_help = "more examples: sub-folders 0-9 of images, or images and a labels.csv of file,label"
    adapt.add_argument("--examples", type=Path, metavar="DIR", help=examples_help)
    adapt.add_argument("--model", default="default", help="the Keras model to adapt (default: default)")
    out_help = "the adapted model's directory (default: where --model profile:NAME finds it)"
    adapt.add_argument("--out", type=Path, metavar="DIR", help=out_help)
    steps_help = "at most this many training steps (default: 300; fewer is quicker, and learns less)"
    adapt.add_argument("--max-steps", type=int, metavar="N", help=steps_help)
    adapt.add_argument("--json", action="store_true", help="print one JSON object as the last line")

    corrections = commands.add_parser("corrections", help="list, export or forget the corrections kept")
    corrections.add_argument("--profile", help="one profile (default: list them all)")
    corrections.add_argument(
        "--export", type=Path, metavar="DIR", help="write the profile's corrections to DIR"
    )
    corrections.add_argument(
        "--format", default="png", choices=["png", "idx"], help="png + labels.csv, or idx"
    )
    corrections.add_argument("--forget", action="store_true", help="delete the profile's corrections")
    corrections.add_argument("--json", action="store_true", help="print one JSON object as the last line")

    export = commands.add_parser("export", help="export a model: keras, savedmodel, tflite, tflite-int8")
    export.add_argument("--model", default="default", help=MODEL_HELP)
    export.add_argument("--format", required=True, choices=["keras", "savedmodel", "tflite", "tflite-int8"])
    export.add_argument("--out", type=Path, required=True, help="the file (or SavedModel directory) to write")
    export.add_argument("--force", action="store_true", help="replace an existing --out")
    _add_data_flags(export)

    serve = commands.add_parser("serve", help="serve the draw-a-digit page and the HTTP API")
    _add_model_flags(serve, default="default-int8")
    serve.add_argument("--host", default="127.0.0.1", help="127.0.0.1 (default); 0.0.0.0 exposes it")
    serve.add_argument("--port", type=int, default=8000, help="8000 (default); 0 takes any free port")
    hosts_help = "a Host header to answer (repeatable; default: the --host name, any for 0.0.0.0; * for any)"
    serve.add_argument("--allowed-host", action="append", metavar="NAME", help=hosts_help)
    workers_help = "processes serving (default: one per core, at most 4, for a .tflite model; else 1)"
    serve.add_argument("--workers", type=int, default=0, metavar="N", help=workers_help)


def _add_profile_flag(command) -> None:
    command.add_argument(
        "--profile", default="me", help="whose handwriting: a name of your choosing (default: me)"
    )


def _add_model_flags(command, default: str = "default") -> None:
    command.add_argument("--model", default=default, help=MODEL_HELP.replace(": default)", f": {default})"))
    command.add_argument("--trust-model", action="store_true", help=TRUST_HELP)


def _add_data_flags(command, dataset: bool = True) -> None:
    if dataset:
        command.add_argument("--dataset", help="mnist (default), fashion-mnist or kmnist")
    command.add_argument("--data-dir", type=Path, metavar="DIR", help="the dataset's folder, and no other")
    command.add_argument("--json", action="store_true", help="print one JSON object as the last line")
