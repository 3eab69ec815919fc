"""The `digitrec` command: flags in, one library call, a summary out.

Every user error is one line on stderr, `digitrec: error: ...`, with exit code 2; `--debug`
shows the traceback instead. Ctrl-C exits 130.
"""

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import NoReturn

from digitrec.cli_parser import DEFAULT_RECIPE, build_parser
from digitrec.errors import ConfigError, DigitrecError, ImageError
from digitrec.files import silenced_stderr

PREDICT_BATCH = 64
# The augmentation amounts: each flag, and the TrainConfig field it sets.
AUGMENT_FLAGS = {
    "rotation": "rotation_deg",
    "shift": "shift",
    "zoom": "zoom",
    "shear": "shear",
    "elastic": "elastic_alpha",
}


def _train(args: argparse.Namespace) -> None:
    config = _train_config(args)
    name = "ensemble" if args.model == "ensemble" else config.model
    out = args.out or Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    options = {
        "data_dir": args.data_dir,
        "log": _log_to(sys.stderr if args.json else sys.stdout),
        "progress": _interactive(args),
        "tensorboard_dir": args.tensorboard,
    }
    if name == "ensemble":
        from digitrec.ensemble import DEFAULT_MEMBERS, train_ensemble

        result = train_ensemble(config, out, args.members or DEFAULT_MEMBERS, **options)
    elif args.strategy != "default":
        from digitrec.distribute import WORKER_TIMEOUT_S, train_with_strategy

        timeout = args.worker_timeout or WORKER_TIMEOUT_S
        result = train_with_strategy(
            config, out, args.strategy, worker_timeout_s=timeout, resume=args.resume, **options
        )
    else:
        from digitrec.train import train

        result = train(config, out, resume=args.resume, **options)
    _report_trained(args, result, name)


def _join(args: argparse.Namespace) -> None:
    from digitrec.ensemble import join_members

    if args.out.exists() and any(args.out.iterdir()):
        raise ConfigError(f"{args.out} is not empty; choose another --out")
    _report_trained(args, join_members(args.models, args.out, data_dir=args.data_dir), "ensemble")


def _report_trained(args: argparse.Namespace, result, name: str) -> None:
    summary = {
        "model_dir": str(result.model_dir),
        "model": name,
        "accuracy": result.accuracy,
        "val_accuracy": result.val_accuracy,
        "train_seconds": round(result.train_seconds, 2),
        "epochs": result.epochs,
    }
    _report(
        args,
        summary,
        f"test accuracy {result.accuracy:.4f} (validation {result.val_accuracy:.4f}) "
        f"after {result.epochs} epoch{'s' * (result.epochs != 1)}, {result.train_seconds:.1f} s of training; "
        f"saved to {result.model_dir}",
    )


def _train_config(args: argparse.Namespace):
    """The recipe of --model with the flags given on top; on --resume, the checkpoint's."""
    from digitrec.checkpoints import checkpoint_config
    from digitrec.recipes import recipe

    flags = {
        "augment": args.augment,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "seed": args.seed,
        "dataset": args.dataset,
        "train_limit": args.train_limit,
        "patience": args.patience,
        "ema_momentum": args.ema,
        "precision": args.precision,
        "teacher": args.teacher,
        "distill_weight": args.distill_weight,
        **{field: getattr(args, flag) for flag, field in AUGMENT_FLAGS.items()},
    }
    if args.resume and args.out is None:
        raise ConfigError("--resume needs --out DIR, the run to continue")
    if not args.resume or args.model == "ensemble":  # an ensemble resumes its unfinished members itself
        config = recipe(DEFAULT_RECIPE if args.model in (None, "ensemble") else args.model, **flags)
    else:
        # Flags given with --resume must agree with the checkpoint: train() names any that differ.
        flags["model"] = args.model
        config = replace(checkpoint_config(args.out), **{k: v for k, v in flags.items() if v is not None})
    _refuse_ignored_flags(args, config)
    return config


def _refuse_ignored_flags(args: argparse.Namespace, config) -> None:
    """A flag the run would ignore is an error: whoever gave it expected it to change the run."""
    amounts = [flag for flag in AUGMENT_FLAGS if getattr(args, flag)]
    ensemble, distributed = args.model == "ensemble", args.strategy != "default"
    if amounts and not config.augment:
        raise ConfigError(
            f"--{amounts[0]} sets an augmentation, but this run does not augment: add --augment"
        )
    if args.distill_weight is not None and not config.teacher:
        raise ConfigError("--distill-weight weighs a teacher's probabilities: add --teacher MODEL")
    if args.members is not None and not ensemble:
        raise ConfigError("--members counts an ensemble's members: add --model ensemble")
    if args.worker_timeout is not None and args.strategy != "multi-worker":
        raise ConfigError("--worker-timeout is for --strategy multi-worker")
    if ensemble and distributed:
        raise ConfigError("--strategy trains one model; an ensemble trains its members one by one")


def _evaluate(args: argparse.Namespace) -> None:
    from digitrec.evaluate import evaluate

    figures = evaluate(args.model, args.dataset, args.data_dir, args.split, report_dir=args.report)
    text = _evaluation_text(figures) + (f"\nreport: {args.report / 'report.html'}" if args.report else "")
    _report(args, figures, text)


def _compare(args: argparse.Namespace) -> None:
    from digitrec.evaluate import compare

    result = compare(args.models, args.dataset or "mnist", args.data_dir)
    lines = ["model  accuracy  size  parameters  latency"]
    lines += [
        f"{r['model']}  {r['accuracy']:.4f}  {r['bytes'] / 1024:.0f} KiB  {r['parameters'] or '-'}  "
        f"{r['latency_ms']:.2f} ms"
        for r in result["models"]
    ]
    if "mcnemar" in result:
        m = result["mcnemar"]
        lines.append(
            f"McNemar: {m['a_only']} images only the first gets right, {m['b_only']} only the second; "
            f"p = {m['p_value']:.4g}"
        )
    _report(args, result, "\n".join(lines))


def _show(args: argparse.Namespace) -> None:
    from digitrec.report import sample_grid

    path = sample_grid(args.out, args.dataset or "mnist", args.digit, args.n, args.data_dir)
    _report(args, {"out": str(path)}, f"wrote {path}")


def _predict(args: argparse.Namespace) -> int:
    from digitrec.preprocess import IMAGE_SUFFIXES, find_images, limit_pillow_pixels
    from digitrec.recognizer import Recognizer

    limit_pillow_pixels()
    recognizer = Recognizer.load(args.model)
    files = find_images(args.paths)
    if not files:
        raise ConfigError(
            f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) under {', '.join(map(str, args.paths))}"
        )
    failures = 0
    for start in range(0, len(files), PREDICT_BATCH):
        readable, prepared = [], []
        for path in files[start : start + PREDICT_BATCH]:
            try:
                prepared.append(recognizer.prepare(path, args.multi))
                readable.append(path)
            except ImageError as exc:  # one unreadable file does not stop the others; exc names it
                print(f"digitrec: error: {exc}", file=sys.stderr)
                failures += 1
        for path, answer in zip(readable, recognizer.predict_prepared(prepared), strict=True):
            print(
                json.dumps({"path": str(path), **answer.to_dict(args.top_k)})
                if args.json
                else _prediction_text(path, answer, args.top_k)
            )
    return 2 if failures else 0


def _export(args: argparse.Namespace) -> None:
    from digitrec.export import export

    done = export(args.model, args.format, args.out, force=args.force, data_dir=args.data_dir)
    _report(
        args,
        done,
        f"wrote {done['out']} ({done['bytes']:,} bytes, {done['format']}): test accuracy "
        f"{done['test_accuracy']:.4f} (source {done['source_test_accuracy']}); "
        f"metadata in {done['out']}.json",
    )


def _serve(args: argparse.Namespace) -> None:
    from digitrec.serve import ServeConfig, serve

    serve(
        args.model, ServeConfig(host=args.host, port=args.port), announce=lambda line: print(line, flush=True)
    )


def _prediction_text(path: Path, answer, top_k: int | None) -> str:
    text = f"{path}: {answer.digit} ({answer.confidence:.3f})"
    if answer.number is not None:
        text += f"  number {answer.number or '-'}"
    if top_k:
        text += "  top " + ", ".join(
            f"{t['digit']} {t['probability']:.3f}" for t in answer.to_dict(top_k)["top_k"]
        )
    return text + (f"  uncertain: {answer.reason}" if answer.uncertain else "")


def _evaluation_text(figures: dict) -> str:
    lines = [
        f"{figures['model']} on {figures['dataset']} {figures['split']}: accuracy {figures['accuracy']:.4f}"
        f" ({figures['errors']} errors in {figures['n']})",
        "digit  precision  recall  f1      support",
    ]
    for digit, row in figures["per_class"].items():
        lines.append(
            f"{digit:>5}  {row['precision']:.4f}     {row['recall']:.4f}  {row['f1']:.4f}  {row['support']}"
        )
    lines.append("confusion (rows: true digit, columns: predicted)")
    lines += [" ".join(f"{count:5d}" for count in row) for row in figures["confusion"]]
    return "\n".join(lines)


def _report(args: argparse.Namespace, figures: dict, text: str) -> None:
    print(json.dumps(figures) if args.json else text)


def _log_to(stream):
    return lambda line: print(line, file=stream, flush=True)


def _interactive(args: argparse.Namespace) -> bool:
    return not args.json and sys.stdout.isatty()


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


_HANDLERS = {
    "train": _train,
    "join": _join,
    "evaluate": _evaluate,
    "predict": _predict,
    "compare": _compare,
    "show": _show,
    "export": _export,
    "serve": _serve,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command line; the exit code: 0, 2 for a refused input, 130 when interrupted."""
    args = build_parser().parse_args(argv)
    try:
        if not args.debug and _needs_keras(args):
            _import_keras_quietly()
        code = _HANDLERS[args.command](args) or 0
    except KeyboardInterrupt:
        print("digitrec: interrupted", file=sys.stderr)
        return 130
    except (DigitrecError, OSError) as exc:
        if args.debug:
            raise
        print(f"digitrec: error: {_error_text(exc)}", file=sys.stderr)
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
