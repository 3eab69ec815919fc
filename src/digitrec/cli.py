"""The `digitrec` command: flags in, one library call, a summary out. Every user error is one
line on stderr, `digitrec: error: ...`, exit code 2 (`--debug`: the traceback); Ctrl-C exits 130."""

import argparse
import json
import os
import shlex
import sys
from collections.abc import Sequence
from dataclasses import fields
from typing import NoReturn

from digitrec.artifact import resolve_model_path
from digitrec.cli_parser import build_parser
from digitrec.errors import ConfigError, DigitrecError, user_message
from digitrec.files import silenced_stderr


def _train(args: argparse.Namespace) -> None:
    config = _train_config(args)  # its values are checked before TensorFlow loads
    _import_keras_quietly(args)
    from digitrec.training import default_out_dir, train

    args.run = args.out or (None if args.resume else default_out_dir(config))  # for Ctrl-C to name
    stream = sys.stderr if args.json else sys.stdout  # with --json, stdout holds the JSON alone
    options = {"resume": args.resume, "data_dir": args.data_dir, "tensorboard_dir": args.tensorboard}
    log, progress = lambda line: print(line, file=stream, flush=True), not args.json and sys.stdout.isatty()
    result = train(config, args.run, log=log, progress=progress, **options)
    _report(args, result.to_dict(), result.describe())


def _train_config(args: argparse.Namespace):
    """The recipe with the flags given on top; on --resume without --recipe, the run's own."""
    from digitrec.recipes import TrainConfig, recipe

    if args.recipe_alias:
        print("digitrec: warning: train --model is deprecated; use --recipe", file=sys.stderr)
    name = args.recipe or args.recipe_alias
    overrides = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if "help" in f.metadata}
    if args.resume and name is None and args.out is not None:
        _import_keras_quietly(args)
        from digitrec.training import stored_config

        return stored_config(args.out, **overrides)
    return recipe(name or "cnn", **overrides)


def _join(args: argparse.Namespace) -> None:
    from digitrec.ensemble import join_members

    result = join_members(args.models, args.out, data_dir=args.data_dir)
    _report(args, result.to_dict(), result.describe())


def _evaluate(args: argparse.Namespace) -> None:
    from digitrec.evaluation import describe_evaluation, evaluate

    figures = evaluate(_recognizer(args), args.dataset, args.data_dir, args.split, report_dir=args.report)
    report = f"\nreport: {args.report / 'report.html'}" if args.report else ""
    _report(args, figures, describe_evaluation(figures) + report)


def _compare(args: argparse.Namespace) -> None:
    from digitrec.evaluation import compare, describe_comparison

    result = compare(
        [_recognizer(args, model) for model in args.models],
        args.dataset,
        args.data_dir,
        report_dir=args.report,
    )
    _report(args, result, describe_comparison(result))


def _show(args: argparse.Namespace) -> None:
    from digitrec.report import sample_grid

    path = sample_grid(args.out, args.dataset or "mnist", args.digit, args.n, args.data_dir)
    _report(args, {"out": str(path)}, f"wrote {path}")


def _predict(args: argparse.Namespace) -> int:
    from digitrec.preprocess import check_image_files, limit_pillow_pixels

    if args.correct is not None and (len(args.paths) != 1 or args.paths[0].is_dir() or args.multi):
        raise ConfigError("--correct DIGIT corrects the reading of one image of one digit: pass one file")
    limit_pillow_pixels()  # the command owns its process: Pillow's bomb limit becomes digitrec's
    resolve_model_path(args.model)  # a wrong model is said first; then files by their headers alone
    files, refused = check_image_files(args.paths)
    failures, answers = 0, _recognizer(args).predict_files(files, args.multi) if files else []
    for path, answer in [*refused, *answers]:
        if isinstance(answer, DigitrecError):  # one unreadable file does not stop the others
            print(f"digitrec: error: {answer}", file=sys.stderr)
            failures += 1
        elif args.json:
            print(json.dumps({"path": str(path), **answer.to_dict(args.top_k, whole=False)}))
        else:
            print(f"{_printable(str(path))}: {answer.describe(args.top_k)}")
        if args.correct is not None and not isinstance(answer, DigitrecError):
            _keep_correction(args, answer)
    return 2 if failures else 0


def _keep_correction(args: argparse.Namespace, answer) -> None:
    from digitrec.corrections import CorrectionStore

    store = CorrectionStore()
    store.add(args.profile, answer.image, args.correct, predicted=answer.digit, source="cli")
    note = f"kept as a correction to profile {args.profile!r} ({store.count(args.profile)} in all)"
    print(f"digitrec: {note}; digitrec adapt --profile {args.profile} learns from them", file=sys.stderr)


def _adapt(args: argparse.Namespace) -> None:
    from digitrec.adaptation import AdaptConfig
    from digitrec.profiles import adapt_profile

    config = AdaptConfig() if args.max_steps is None else AdaptConfig(max_steps=args.max_steps)
    stream = sys.stderr if args.json else sys.stdout
    log = lambda line: print(line, file=stream, flush=True)  # noqa: E731
    options = {"base": args.model, "examples_dir": args.examples, "out": args.out, "config": config}
    result = adapt_profile(args.profile, **options, log=log)
    use = f"\nuse it: --model {args.out or f'profile:{args.profile}'}"
    _report(args, result.to_dict(), result.describe() + use)


def _corrections(args: argparse.Namespace) -> None:
    from digitrec.corrections import CorrectionStore

    store = CorrectionStore()
    if (args.export or args.forget) and not args.profile:
        raise ConfigError("--export and --forget need --profile NAME")
    if args.export:
        count = store.export(args.profile, args.export, args.format)
        _report(
            args,
            {"profile": args.profile, "exported": count, "out": str(args.export)},
            f"wrote {count} corrections of {args.profile!r} to {args.export} ({args.format})",
        )
    elif args.forget:
        count = store.delete(args.profile)
        _report(
            args,
            {"profile": args.profile, "deleted": count},
            f"forgot {count} corrections of {args.profile!r}",
        )
    else:
        profiles = store.profiles() if not args.profile else {args.profile: store.count(args.profile)}
        lines = [f"{name}: {count} correction{'s' * (count != 1)}" for name, count in profiles.items()]
        _report(
            args,
            {"store": str(store.path), "profiles": profiles},
            "\n".join(lines or [f"no corrections yet in {store.path}"]),
        )


def _recognizer(args: argparse.Namespace, model: str | None = None):
    _import_keras_quietly(args)
    from digitrec.recognizer import Recognizer

    return Recognizer.load(model or args.model, trust_model=args.trust_model)


def _printable(text: str) -> str:
    """`text` with control characters escaped as Python writes them: a file name forges no line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _export(args: argparse.Namespace) -> None:
    from digitrec.exporter import describe_export, export

    done = export(args.model, args.format, args.out, force=args.force, data_dir=args.data_dir)
    _report(args, done, describe_export(done))


def _serve(args: argparse.Namespace) -> None:
    from digitrec.server import ServeConfig, serve

    hosts = tuple(args.allowed_host or ())
    config = ServeConfig(args.host, args.port, hosts, args.trust_model, workers=args.workers)
    serve(args.model, config, announce=lambda line: print(line, flush=True))


def _report(args: argparse.Namespace, figures: dict, text: str) -> None:
    print(json.dumps(figures) if args.json else text)


def _import_keras_quietly(args: argparse.Namespace) -> None:
    """Refuse a wrong model name or path; then import Keras (and so TensorFlow) without its oneDNN
    and CPU-feature notices (--debug shows them). `show`, `corrections` and LiteRT models never need it."""
    given = [*(getattr(args, "models", None) or []), *(getattr(args, k, None) for k in ("model", "teacher"))]
    models = [resolve_model_path(m) for m in given if m]
    if (
        args.debug
        or args.command in ("show", "corrections")
        or (models and all(m.suffix == ".tflite" for m in models))
    ):
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with silenced_stderr():
        import keras  # noqa: F401


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command line; the exit code: 0, 2 for a refused input, 130 when interrupted."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        if args.command not in ("train", "predict"):  # these two check their inputs first
            _import_keras_quietly(args)
        code = globals()[f"_{args.command}"](args) or 0  # `_train` runs `train`, …
    except KeyboardInterrupt:
        print(f"digitrec: interrupted{_how_to_resume(args, argv)}", file=sys.stderr)
        return 130
    except (DigitrecError, OSError, ModuleNotFoundError) as exc:
        message = user_message(exc)
        if args.debug or message is None:
            raise
        print(f"digitrec: error: {message}", file=sys.stderr)
        return 2
    return code


def _how_to_resume(args: argparse.Namespace, argv: list[str]) -> str:
    """`; resume with: digitrec train ... --resume --out DIR` once a run has a checkpoint."""
    if getattr(args, "run", None) is None:  # set once `train` is under way
        return ""
    from digitrec.training import resumable

    if not resumable(args.run):
        return " before the first checkpoint: nothing to resume"
    flags = ([] if args.out else ["--out", str(args.run)]) + ([] if args.resume else ["--resume"])
    return f"; resume with: {shlex.join(['digitrec', *argv, *flags])}"


def run() -> NoReturn:
    """The console entry point: `main`, then exit skipping TensorFlow's teardown (most of a second)."""
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
