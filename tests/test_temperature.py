import numpy as np
import pytest

from digitrec.errors import ConfigError
from digitrec.temperature import apply_temperature, fit_temperature


def _softmax(logits: np.ndarray) -> np.ndarray:
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def answers() -> tuple[np.ndarray, np.ndarray]:
    """Logits of a well-calibrated reader: its labels are drawn from its own probabilities."""
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (4000, 10))
    probs = _softmax(logits)
    labels = np.array([rng.choice(10, p=p / p.sum()) for p in probs.astype(np.float64)])
    return logits, labels


def test_a_temperature_of_one_changes_nothing(answers):
    logits, _ = answers
    probs = _softmax(logits)
    assert apply_temperature(probs, 1.0) is probs


def test_rescaled_probabilities_sum_to_one_and_keep_every_answer(answers):
    probs = _softmax(answers[0])
    for temperature in (0.3, 2.5):
        scaled = apply_temperature(probs, temperature)
        assert np.allclose(scaled.sum(axis=1), 1, atol=1e-5)
        assert np.array_equal(scaled.argmax(axis=1), probs.argmax(axis=1))
    assert apply_temperature(probs, 0.3).max(axis=1).mean() > probs.max(axis=1).mean()


@pytest.mark.parametrize("true_temperature", [0.5, 1.0, 2.0])
def test_the_fitted_temperature_undoes_a_known_one(answers, true_temperature):
    # Answers softened (or sharpened) by T are put right by a fitted temperature near 1/T.
    logits, labels = answers
    fitted = fit_temperature(_softmax(logits * true_temperature), labels)
    assert fitted == pytest.approx(true_temperature, rel=0.15)


def test_an_exact_zero_probability_stays_finite():
    probs = np.array([[1.0] + [0.0] * 9], np.float32)
    assert np.isfinite(apply_temperature(probs, 2.0)).all()


def test_a_temperature_needs_as_many_labels_as_answers():
    with pytest.raises(ConfigError, match="as many labels as answers"):
        fit_temperature(np.full((3, 10), 0.1, np.float32), np.zeros(2, int))
