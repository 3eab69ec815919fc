"""Classification figures from labels and predicted probabilities, in plain NumPy."""

import math

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


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The 95% Wilson score interval of a proportion: sound near 0 and 1, unlike the normal one."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (float(centre - half), float(centre + half))


def calibration(labels: np.ndarray, probs: np.ndarray, bins: int = 15) -> dict:
    """Expected calibration error and the reliability diagram's bins (Guo et al. 2017).

    Predictions are grouped by their top probability into equal-width bins; ECE is the
    count-weighted gap between each bin's mean confidence and its accuracy.
    """
    confidence = probs.max(axis=1)
    right = probs.argmax(axis=1) == np.asarray(labels)
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    rows, ece = [], 0.0
    for b in range(bins):
        members = which == b
        count = int(members.sum())
        if count:
            gap = abs(float(confidence[members].mean()) - float(right[members].mean()))
            ece += gap * count / len(labels)
            rows.append(
                {
                    "low": float(edges[b]),
                    "high": float(edges[b + 1]),
                    "count": count,
                    "confidence": float(confidence[members].mean()),
                    "accuracy": float(right[members].mean()),
                }
            )
    return {"ece": round(ece, 6), "bins": rows}


def mcnemar(right_a: np.ndarray, right_b: np.ndarray) -> dict:
    """McNemar's exact test: do two models err on the same test images more often than chance?

    Only the images exactly one model gets right count: `a_only` and `b_only`. Under the null
    hypothesis (equal accuracy) each such image is a fair coin; the p-value is two-sided.
    """
    a_only = int(np.sum(right_a & ~right_b))
    b_only = int(np.sum(~right_a & right_b))
    n = a_only + b_only
    tail = sum(math.comb(n, k) for k in range(min(a_only, b_only) + 1)) / 2**n if n else 1.0
    return {"a_only": a_only, "b_only": b_only, "p_value": min(1.0, 2 * tail)}
