"""Temperature scaling: probabilities that mean what they say (Guo et al. 2017, "On Calibration
of Modern Neural Networks").

Label smoothing and distillation teach a network to hold back: the bundled `cnn` tops out near
0.94 on digits it reads without doubt, so a threshold on its confidence flags clean digits. One
number, the temperature T, fitted on the validation split by the negative log-likelihood, rescales
every answer as softmax(log p / T): T < 1 sharpens, T > 1 softens, and the order of the digits,
hence every prediction, stays as it was. The test split chooses nothing here.
"""

import numpy as np

from digitrec.errors import ConfigError

LOWEST_PROBABILITY = 1e-12  # an int8 model can answer exactly 0; its logarithm must stay finite


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """`probs` rescaled as softmax(log probs / temperature); unchanged at 1."""
    if temperature == 1:
        return probs
    logits = np.log(np.maximum(probs, LOWEST_PROBABILITY)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    scaled = np.exp(logits)
    return (scaled / scaled.sum(axis=1, keepdims=True)).astype(np.float32)


def fit_temperature(probs: np.ndarray, labels: np.ndarray) -> float:
    """The temperature that minimises the negative log-likelihood of `labels` (validation only)."""
    if len(probs) != len(labels) or not len(labels):
        raise ConfigError(
            f"a temperature needs as many labels as answers, got {len(labels)} and {len(probs)}"
        )

    def negative_log_likelihood(log_temperature: float) -> float:
        scaled = apply_temperature(probs, float(np.exp(log_temperature)))
        return -float(np.mean(np.log(np.maximum(scaled[np.arange(len(labels)), labels], LOWEST_PROBABILITY))))

    from scipy.optimize import minimize_scalar  # 0.4 s to import: only training and `calibrate` fit

    # T from 1/20 to 20: far beyond what any model here needs, and never zero or negative.
    best = minimize_scalar(negative_log_likelihood, bounds=(-3.0, 3.0), method="bounded")
    return round(float(np.exp(best.x)), 4)
