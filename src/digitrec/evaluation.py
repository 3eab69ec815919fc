"""Evaluation of a trained model on a dataset split: accuracy, per-class figures, confusion."""

import time
from pathlib import Path

import numpy as np

from digitrec.artifact import resolve_model_path, update_metadata
from digitrec.data import load_dataset, scale
from digitrec.errors import ConfigError
from digitrec.files import size_of
from digitrec.metrics import calibration, classification_metrics, mcnemar, wilson_interval
from digitrec.recognizer import Recognizer
from digitrec.temperature import fit_temperature

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
    """The report of `digitrec.report`, with the training curves where the model has a history
    and, for the most confident mistakes, the ink each answer rests on."""
    from digitrec.explanation import overlay_png, saliency
    from digitrec.report import EXPLAINED_MISTAKES, mistakes, write_report

    history = loaded.path / "history.json" if loaded.path else None  # beneath a .tflite file: not there
    history = history if history and history.is_file() else None
    worst = [m["index"] for m in mistakes(labels, probs)[:EXPLAINED_MISTAKES]]
    why = {i: overlay_png(images[i], saliency(loaded, images[i]), scale_px=1) for i in worst}
    metadata = loaded.metadata
    write_report(figures, images, labels, probs, report_dir, history=history, metadata=metadata, why=why)


def calibrate(model: str | Path, data_dir: Path | str | None = None) -> float:
    """Fit a saved model's temperature on its validation split and record it in its metadata.

    Models trained here are calibrated as they are saved; this is for older ones.
    """
    path = resolve_model_path(model)
    recognizer = Recognizer.load(path)
    recognizer.temperature = 1.0  # fit on the model's own answers, not on an earlier fit's
    images, labels = load_dataset(recognizer.metadata.get("dataset", "mnist"), data_dir).split("validation")
    temperature = fit_temperature(recognizer.predict_proba(scale(images)), labels)
    update_metadata(path, temperature=temperature)
    return temperature


def compare(
    models: list[Recognizer | str | Path],
    dataset: str | None = None,
    data_dir: Path | str | None = None,
    report_dir: Path | str | None = None,
) -> dict:
    """Accuracy (overall and per digit), size, parameters and single-image latency per model on the
    test split of `dataset` (by default the first model's); McNemar's test of the first two; with
    `report_dir`, the same as a page there (see `digitrec.report.write_comparison`)."""
    # A bad one fails here, before minutes of measuring.
    loaded_models = [m if isinstance(m, Recognizer) else Recognizer.load(m) for m in models]
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
                "per_digit": {str(d): float(right[data.test_labels == d].mean()) for d in range(10)},
                "bytes": _size(loaded.path) if loaded.path else 0,
                "parameters": loaded.metadata.get("parameters"),
                "latency_ms": round(float(np.median(latencies)) * 1000, 3),
            }
        )
    result: dict = {"dataset": dataset, "n": len(data.test_labels), "models": rows}
    if len(rights) >= 2:
        result["mcnemar"] = {"a": rows[0]["model"], "b": rows[1]["model"], **mcnemar(rights[0], rights[1])}
    if report_dir is not None:
        from digitrec.report import write_comparison

        write_comparison(result, Path(report_dir))
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
