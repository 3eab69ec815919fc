"""Classification figures from labels and predicted probabilities, in plain NumPy."""

import numpy as np

from digitrec.errors import ConfigError


def classification_metrics(labels: np.ndarray, probs: np.ndarray) -> dict:
    """Accuracy, per-class precision/recall/F1 and the confusion matrix (rows: true digit)."""
    labels = np.asarray(labels).astype(np.int64)
    if probs.ndim != 2 or len(probs) != len(labels):
        raise ConfigError(f"expected probabilities shaped ({len(labels)}, classes), got {probs.shape}")
    classes = probs.shape[1]
    predicted = probs.argmax(axis=1)
    confusion = np.zeros((classes, classes), np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    true_positive = np.diag(confusion).astype(np.float64)
    precision = np.divide(true_positive, confusion.sum(0), out=np.zeros(classes), where=confusion.sum(0) > 0)
    recall = np.divide(true_positive, confusion.sum(1), out=np.zeros(classes), where=confusion.sum(1) > 0)
    denominator = precision + recall
    f1 = np.divide(2 * precision * recall, denominator, out=np.zeros(classes), where=denominator > 0)
    return {
        "accuracy": float(true_positive.sum() / max(len(labels), 1)),
        "n": len(labels),
        "errors": int(len(labels) - true_positive.sum()),
        "per_class": {
            str(digit): {
                "precision": round(float(precision[digit]), 6),
                "recall": round(float(recall[digit]), 6),
                "f1": round(float(f1[digit]), 6),
                "support": int(confusion[digit].sum()),
            }
            for digit in range(classes)
        },
        "confusion": confusion.tolist(),
    }
