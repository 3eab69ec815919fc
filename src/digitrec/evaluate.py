"""Evaluation of a trained model on a dataset split: accuracy, per-class figures, confusion."""

import time
from pathlib import Path

from digitrec.data import load_dataset, scale
from digitrec.errors import ConfigError
from digitrec.metrics import classification_metrics
from digitrec.runtime import LoadedBackend, load_backend

SPLITS = ("test", "validation")


def evaluate(
    model: LoadedBackend | str | Path = "default",
    dataset: str | None = None,
    data_dir: Path | str | None = None,
    split: str = "test",
) -> dict:
    """Figures of `model` (any format) on a split of `dataset` (by default its training set's)."""
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    loaded = model if isinstance(model, LoadedBackend) else load_backend(model)
    dataset = dataset or loaded.metadata.get("dataset", "mnist")
    data = load_dataset(dataset, data_dir)
    images, labels = (
        (data.test_images, data.test_labels) if split == "test" else (data.val_images, data.val_labels)
    )
    started = time.perf_counter()
    probs = loaded.backend.predict_proba(scale(images))
    return {
        "model": str(loaded.path),
        "dataset": dataset,
        "split": split,
        **classification_metrics(labels, probs),
        "seconds": round(time.perf_counter() - started, 3),
    }
