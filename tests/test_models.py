import keras
import numpy as np
import pytest

from digitrec import models
from digitrec.errors import ConfigError
from digitrec.recipes import ARCHITECTURES
from digitrec.recognizer import Recognizer


def _probabilities(model: keras.Model, images: np.ndarray) -> np.ndarray:
    return Recognizer.from_keras(model).predict_proba(images)


@pytest.mark.parametrize("name", list(models.MODELS))
def test_every_model_maps_28x28_images_to_ten_probabilities(name):
    model = models.build(name)
    probs = _probabilities(model, np.random.default_rng(0).random((3, 28, 28), np.float32))
    assert model.name == name and probs.shape == (3, 10)
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_the_zoo_builds_every_architecture_a_configuration_names():
    assert tuple(models.MODELS) == ARCHITECTURES


def test_the_tutorials_model_starts_from_zero_weights():
    model = models.softmax()
    assert all(not np.any(w) for w in model.get_weights())
    assert model.count_params() == 784 * 10 + 10


def test_the_fast_model_is_small():
    assert 25_000 < models.fast().count_params() < 35_000


def test_an_ensemble_averages_its_members_probabilities():
    members = [models.build("softmax"), models.build("mlp")]
    images = np.random.default_rng(1).random((4, 28, 28), np.float32)
    expected = np.mean([_probabilities(m, images) for m in members], axis=0)
    assert np.allclose(_probabilities(models.ensemble(members), images), expected, atol=1e-6)


def test_predicting_nothing_gives_an_empty_answer():
    assert _probabilities(models.softmax(), np.zeros((0, 28, 28), np.float32)).shape == (0, 10)


def test_an_unknown_model_lists_the_known_ones():
    with pytest.raises(ConfigError, match="softmax, mlp, lenet5, fast, cnn"):
        models.build("resnet")


def test_mixed_precision_computes_in_bfloat16_but_answers_in_float32():
    model = models.build("fast", "mixed_bfloat16")
    assert model.layers[2].compute_dtype == "bfloat16" and model.layers[2].variable_dtype == "float32"
    probs = model(np.random.default_rng(2).random((2, 28, 28), np.float32))
    assert keras.backend.standardize_dtype(probs.dtype) == "float32"
    assert models.build("fast").layers[2].compute_dtype == "float32"  # the policy did not leak


def test_the_float32_copy_has_the_same_weights_and_nearly_the_same_answers():
    mixed = models.build("fast", "mixed_bfloat16")
    copy = models.float32_copy(mixed, "fast")
    assert all(np.array_equal(a, b) for a, b in zip(mixed.get_weights(), copy.get_weights(), strict=True))
    assert copy.layers[2].compute_dtype == "float32"
    images = np.random.default_rng(3).random((16, 28, 28), np.float32)
    assert np.abs(_probabilities(mixed, images) - _probabilities(copy, images)).max() < 0.02


def test_an_unknown_precision_is_refused():
    with pytest.raises(ConfigError, match="float32, mixed_bfloat16"):
        models.build("fast", "float8")


@pytest.mark.parametrize(
    ("flags", "emulated"),
    [
        ("flags\t\t: fpu sse2 avx2 fma", True),  # an AVX2-only x86 CPU
        ("flags\t\t: fpu avx2 avx512f avx512_bf16", False),
        ("flags\t\t: fpu avx2 amx_bf16 amx_tile", False),
        ("Features\t: fp asimd bf16 i8mm", False),  # an Arm CPU with bfloat16 instructions
        ("processor\t: 0", False),  # no flags line: cannot tell, so no warning
    ],
)
def test_bfloat16_is_emulated_on_cpus_without_bfloat16_units(tmp_path, flags, emulated):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\n{flags}\n\nprocessor\t: 1\n{flags}\n")
    assert models.bfloat16_is_emulated(cpuinfo) is emulated


def test_an_unreadable_cpuinfo_gives_no_warning(tmp_path):
    assert models.bfloat16_is_emulated(tmp_path / "missing") is False


def test_float32_never_warns():
    assert models.precision_warning("float32") is None
