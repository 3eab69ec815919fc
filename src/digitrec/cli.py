"""The `digitrec` command: flags in, one library call, a summary out.

Every user error is one line on stderr, `digitrec: error: ...`, with exit code 2; `--debug`
shows the traceback instead. Ctrl-C exits 130.
"""

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import fields
from typing import NoReturn

from digitrec.cli_parser import build_parser
from digitrec.errors import DigitrecError
from digitrec.files import silenced_stderr


def _train(args: argparse.Namespace) -> None:
    from digitrec.training import train

    stream = sys.stderr if args.json else sys.stdout  # with --json, stdout holds the JSON alone
    result = train(
        _train_config(args),
        args.out,
        resume=args.resume,
        data_dir=args.data_dir,
        log=lambda line: print(line, file=stream, flush=True),
        progress=not args.json and sys.stdout.isatty(),
        tensorboard_dir=args.tensorboard,
    )
    _report(args, result.to_dict(), result.describe())


def _train_config(args: argparse.Namespace):
    """The recipe with the flags given on top; on --resume without --recipe, the run's own."""
    from digitrec.recipes import TrainConfig, configure, recipe
    from digitrec.training import stored_config

    if args.recipe_alias:
        print("digitrec: warning: train --model is deprecated; use --recipe", file=sys.stderr)
    name = args.recipe or args.recipe_alias
    overrides = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if "help" in f.metadata}
    if args.resume and name is None and args.out is not None:
        return configure(stored_config(args.out), **overrides)
    return recipe(name or "cnn", **overrides)


def _join(args: argparse.Namespace) -> None:
    from digitrec.ensemble import join_members

    result = join_members(args.models, args.out, data_dir=args.data_dir)
    _report(args, result.to_dict(), result.describe())


def _evaluate(args: argparse.Namespace) -> None:
    from digitrec.evaluation import describe_evaluation, evaluate

    figures = evaluate(args.model, args.dataset, args.data_dir, args.split, report_dir=args.report)
    report = f"\nreport: {args.report / 'report.html'}" if args.report else ""
    _report(args, figures, describe_evaluation(figures) + report)


def _compare(args: argparse.Namespace) -> None:
    from digitrec.evaluation import compare, describe_comparison

    result = compare(args.models, args.dataset, args.data_dir)
    _report(args, result, describe_comparison(result))


def _show(args: argparse.Namespace) -> None:
    from digitrec.report import sample_grid

    path = sample_grid(args.out, args.dataset or "mnist", args.digit, args.n, args.data_dir)
    _report(args, {"out": str(path)}, f"wrote {path}")


def _predict(args: argparse.Namespace) -> int:
    from digitrec.recognizer import Recognizer

    failures = 0
    for path, answer in Recognizer.load(args.model).predict_files(args.paths, args.multi):
        if isinstance(answer, DigitrecError):  # one unreadable file does not stop the others
            print(f"digitrec: error: {answer}", file=sys.stderr)
            failures += 1
        elif args.json:
            print(json.dumps({"path": str(path), **answer.to_dict(args.top_k)}))
        else:
            print(f"{path}: {answer.describe(args.top_k)}")
    return 2 if failures else 0


def _export(args: argparse.Namespace) -> None:
    from digitrec.exporter import export

    done = export(args.model, args.format, args.out, force=args.force, data_dir=args.data_dir)
    source = done["source_test_accuracy"]
    text = f"wrote {done['out']} ({done['bytes']:,} bytes, {done['format']}): test accuracy "
    _report(
        args, done, text + f"{done['test_accuracy']:.4f} (source {source}); metadata in {done['out']}.json"
    )


def _serve(args: argparse.Namespace) -> None:
    from digitrec.server import ServeConfig, serve

    serve(
        args.model, ServeConfig(host=args.host, port=args.port), announce=lambda line: print(line, flush=True)
    )


def _report(args: argparse.Namespace, figures: dict, text: str) -> None:
    print(json.dumps(figures) if args.json else text)


# Where an optional dependency is missing: the extra that installs it.
_EXTRAS = {"keras": "train", "tensorflow": "train", "matplotlib": "train", "tensorboard": "train"}
_EXTRAS |= dict.fromkeys(("fastapi", "starlette", "uvicorn", "multipart", "prometheus_client"), "serve")


def _missing_extra(exc: ModuleNotFoundError) -> str | None:
    """`pip install 'digitrec[train]'`-style advice where an extra's package is missing, else None."""
    extra = _EXTRAS.get((exc.name or "").partition(".")[0])
    return (
        f"this needs {exc.name}, which is not installed: pip install 'digitrec[{extra}]'" if extra else None
    )


def _needs_keras(args: argparse.Namespace) -> bool:
    """Everything but a LiteRT model runs on Keras; a `.tflite` one never imports it."""
    if args.command in ("train", "export"):
        return True
    models = getattr(args, "models", None) or [getattr(args, "model", None)]
    return args.command != "show" and not all(str(m).endswith(".tflite") for m in models)


def _import_keras_quietly() -> None:
    """Import Keras (and so TensorFlow) without TensorFlow's oneDNN and CPU-feature notices."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with silenced_stderr():
        import keras  # noqa: F401


_COMMANDS = ("train", "join", "evaluate", "predict", "compare", "show", "export", "serve")
_HANDLERS = {command: globals()[f"_{command}"] for command in _COMMANDS}  # `_train` runs `train`, …


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command line; the exit code: 0, 2 for a refused input, 130 when interrupted."""
    from digitrec.preprocess import limit_pillow_pixels

    args = build_parser().parse_args(argv)
    limit_pillow_pixels()  # the command owns its process: Pillow's bomb limit becomes digitrec's
    try:
        if not args.debug and _needs_keras(args):
            _import_keras_quietly()
        code = _HANDLERS[args.command](args) or 0
    except KeyboardInterrupt:
        print("digitrec: interrupted", file=sys.stderr)
        return 130
    except (DigitrecError, OSError, ModuleNotFoundError) as exc:
        message = _missing_extra(exc) if isinstance(exc, ModuleNotFoundError) else _error_text(exc)
        if args.debug or message is None:
            raise
        print(f"digitrec: error: {message}", file=sys.stderr)
        return 2
    return code


def _error_text(exc: Exception) -> str:
    """`/a/b: Not a directory` rather than Python's `[Errno 20] Not a directory: '/a/b'`."""
    if isinstance(exc, OSError) and exc.strerror and exc.filename:
        return f"{exc.filename}: {exc.strerror}"
    return str(exc)


def run() -> NoReturn:
    """The console entry point: `main`, then exit without the interpreter's teardown.

    Unloading TensorFlow at exit takes most of a second and does nothing for a finished
    command; every file digitrec writes is closed by then, so flush the streams and leave.
    """
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
