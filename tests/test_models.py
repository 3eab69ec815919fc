import numpy as np
import pytest

from digitrec import models
from digitrec.errors import ConfigError


@pytest.mark.parametrize("name", list(models.MODELS))
def test_every_model_maps_28x28_images_to_ten_probabilities(name):
    model = models.build(name)
    probs = models.predict_proba(model, np.random.default_rng(0).random((3, 28, 28), np.float32))
    assert model.name == name and probs.shape == (3, 10)
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_the_tutorials_model_starts_from_zero_weights():
    model = models.softmax()
    assert all(not np.any(w) for w in model.get_weights())
    assert model.count_params() == 784 * 10 + 10


def test_the_fast_model_is_small():
    assert 25_000 < models.fast().count_params() < 35_000


def test_an_ensemble_averages_its_members_probabilities():
    members = [models.build("softmax"), models.build("mlp")]
    images = np.random.default_rng(1).random((4, 28, 28), np.float32)
    expected = np.mean([models.predict_proba(m, images) for m in members], axis=0)
    assert np.allclose(models.predict_proba(models.ensemble(members), images), expected, atol=1e-6)


def test_predicting_nothing_gives_an_empty_answer():
    assert models.predict_proba(models.softmax(), np.zeros((0, 28, 28), np.float32)).shape == (0, 10)


def test_an_unknown_model_lists_the_known_ones():
    with pytest.raises(ConfigError, match="softmax, mlp, lenet5, fast, cnn"):
        models.build("resnet")
