"""Evaluation of a trained model on a dataset split: accuracy, per-class figures, confusion."""

import time
from pathlib import Path

import numpy as np

from digitrec.data import load_dataset, scale
from digitrec.errors import ConfigError
from digitrec.files import size_of
from digitrec.metrics import calibration, classification_metrics, mcnemar, wilson_interval
from digitrec.recognizer import Recognizer

SPLITS = ("test", "validation")


def evaluate(
    model: Recognizer | str | Path = "default",
    dataset: str | None = None,
    data_dir: Path | str | None = None,
    split: str = "test",
    report_dir: Path | str | None = None,
) -> dict:
    """Figures of `model` (any format) on a split of `dataset` (by default its training set's);
    with `report_dir`, also a report with plots there (see `digitrec.report`)."""
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    loaded = model if isinstance(model, Recognizer) else Recognizer.load(model)
    dataset = dataset or loaded.metadata.get("dataset", "mnist")
    data = load_dataset(dataset, data_dir)
    images, labels = data.split(split)
    started = time.perf_counter()
    scaled = scale(images)
    probs = loaded.predict_proba(scaled)
    figures = {
        "model": loaded.name,
        "dataset": dataset,
        "split": split,
        **classification_metrics(labels, probs),
    }
    figures["ci95"] = wilson_interval(figures["n"] - figures["errors"], figures["n"])
    figures["calibration"] = calibration(labels, probs)
    figures["seconds"] = round(time.perf_counter() - started, 3)
    if report_dir is not None:
        _report(loaded, figures, scaled, labels, probs, Path(report_dir))
    return figures


def _report(loaded: Recognizer, figures: dict, images, labels, probs, report_dir: Path) -> None:
    """The report of `digitrec.report`, with the training curves where the model has a history."""
    from digitrec.report import write_report

    history = loaded.path / "history.json" if loaded.path else None  # beneath a .tflite file: not there
    write_report(
        figures, images, labels, probs, report_dir, history=history if history and history.is_file() else None
    )


def compare(models: list[str | Path], dataset: str | None = None, data_dir: Path | str | None = None) -> dict:
    """Accuracy, size, parameters and single-image latency per model on the test split of `dataset`
    (by default the first model's); McNemar's test of the first two."""
    loaded_models = [Recognizer.load(name) for name in models]  # a bad one fails before minutes of measuring
    dataset = dataset or loaded_models[0].metadata.get("dataset", "mnist")
    data = load_dataset(dataset, data_dir)
    images = scale(data.test_images)
    rows, rights = [], []
    for loaded in loaded_models:
        right = loaded.predict_proba(images).argmax(1) == data.test_labels
        rights.append(right)
        latencies = []
        for i in range(50):
            started = time.perf_counter()
            loaded.predict_proba(images[i : i + 1])
            latencies.append(time.perf_counter() - started)
        rows.append(
            {
                "model": loaded.name,
                "accuracy": float(right.mean()),
                "bytes": _size(loaded.path) if loaded.path else 0,
                "parameters": loaded.metadata.get("parameters"),
                "latency_ms": round(float(np.median(latencies)) * 1000, 3),
            }
        )
    result: dict = {"dataset": dataset, "models": rows}
    if len(rights) >= 2:
        result["mcnemar"] = {"a": rows[0]["model"], "b": rows[1]["model"], **mcnemar(rights[0], rights[1])}
    return result


def _size(path: Path) -> int:
    """A model directory counts its weights file; a SavedModel or a file, everything."""
    weights = path / "model.keras"
    return size_of(weights if weights.is_file() else path)


def describe_evaluation(figures: dict) -> str:
    """`evaluate`'s figures as a table for a person."""
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


def describe_comparison(result: dict) -> str:
    """`compare`'s figures as a table for a person."""
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
    return "\n".join(lines)
