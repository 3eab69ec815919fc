import numpy as np
import pytest

from digitrec.errors import ConfigError
from digitrec.metrics import classification_metrics


def test_figures_of_a_small_known_case():
    labels = np.array([0, 0, 1, 1, 2])
    probs = np.eye(3)[[0, 1, 1, 1, 0]]
    figures = classification_metrics(labels, probs)
    assert figures["accuracy"] == pytest.approx(0.6) and figures["n"] == 5 and figures["errors"] == 2
    assert figures["confusion"] == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert figures["per_class"]["1"] == {
        "precision": pytest.approx(2 / 3),
        "recall": 1.0,
        "f1": pytest.approx(0.8),
        "support": 2,
    }
    assert figures["per_class"]["2"]["f1"] == 0.0


def test_mismatched_shapes_are_refused():
    with pytest.raises(ConfigError, match=r"expected probabilities shaped \(3, classes\)"):
        classification_metrics(np.zeros(3), np.zeros((2, 10)))
