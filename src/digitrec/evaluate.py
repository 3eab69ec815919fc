"""Evaluation of a trained model on a dataset split: accuracy, per-class figures, confusion."""

import time
from pathlib import Path

import numpy as np

from digitrec.data import load_dataset, scale
from digitrec.errors import ConfigError
from digitrec.files import size_of
from digitrec.metrics import calibration, classification_metrics, mcnemar, wilson_interval
from digitrec.runtime import LoadedBackend, load_backend

SPLITS = ("test", "validation")


def evaluate(
    model: LoadedBackend | str | Path = "default",
    dataset: str | None = None,
    data_dir: Path | str | None = None,
    split: str = "test",
    report_dir: Path | str | None = None,
) -> dict:
    """Figures of `model` (any format) on a split of `dataset` (by default its training set's);
    with `report_dir`, also a report with plots there (see `digitrec.report`)."""
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    loaded = model if isinstance(model, LoadedBackend) else load_backend(model)
    dataset = dataset or loaded.metadata.get("dataset", "mnist")
    data = load_dataset(dataset, data_dir)
    images, labels = data.split(split)
    started = time.perf_counter()
    scaled = scale(images)
    probs = loaded.backend.predict_proba(scaled)
    figures = {
        "model": str(loaded.path),
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


def _report(loaded: LoadedBackend, figures: dict, images, labels, probs, report_dir: Path) -> None:
    """The report of `digitrec.report`, with the training curves where the model has a history."""
    from digitrec.report import write_report

    history = loaded.path / "history.json"  # beneath a file (a .tflite) it is simply not there
    write_report(figures, images, labels, probs, report_dir, history=history if history.is_file() else None)


def compare(models: list[str | Path], dataset: str = "mnist", data_dir: Path | str | None = None) -> dict:
    """Accuracy, size, parameters and single-image latency per model; McNemar's test of the first two."""
    loaded_models = [load_backend(name) for name in models]  # a bad one fails before minutes of measuring
    data = load_dataset(dataset, data_dir)
    images = scale(data.test_images)
    rows, rights = [], []
    for loaded in loaded_models:
        right = loaded.backend.predict_proba(images).argmax(1) == data.test_labels
        rights.append(right)
        latencies = []
        for i in range(50):
            started = time.perf_counter()
            loaded.backend.predict_proba(images[i : i + 1])
            latencies.append(time.perf_counter() - started)
        rows.append(
            {
                "model": str(loaded.path),
                "accuracy": float(right.mean()),
                "bytes": _size(loaded.path),
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
