import numpy as np
import pytest

from digitrec.contract import check_images
from digitrec.errors import InputError


def test_float64_images_in_the_unit_range_come_back_as_float32_with_the_same_values():
    images = np.linspace(0, 1, 3 * 28 * 28).reshape(3, 28, 28)
    checked = check_images(images)
    assert checked.dtype == np.float32 and checked.shape == (3, 28, 28)
    assert np.allclose(checked, images, atol=1e-7)


def test_nested_lists_of_floats_are_accepted_as_an_array():
    checked = check_images([[[0.5] * 28] * 28] * 2)
    assert isinstance(checked, np.ndarray) and checked.shape == (2, 28, 28) and checked.dtype == np.float32


def test_an_empty_batch_passes():
    assert check_images(np.zeros((0, 28, 28), np.float32)).shape == (0, 28, 28)


def test_a_single_image_is_refused_with_the_images_none_hint():
    with pytest.raises(InputError, match=r"got \(28, 28\); pass a single image as images\[None\]"):
        check_images(np.zeros((28, 28), np.float32))


@pytest.mark.parametrize("shape", [(3, 32, 32), (2, 28, 28, 1), (784,), (1, 28, 27)])
def test_other_shapes_are_refused_naming_the_shape_and_without_the_single_image_hint(shape):
    with pytest.raises(InputError, match=r"expected images shaped \(n, 28, 28\), got") as raised:
        check_images(np.zeros(shape, np.float32))
    assert str(shape) in str(raised.value) and "images[None]" not in str(raised.value)


def test_uint8_pixels_are_refused_with_the_advice_to_divide_by_255():
    with pytest.raises(InputError, match="got uint8 pixels; divide 0-255 pixels by 255"):
        check_images(np.full((1, 28, 28), 200, np.uint8))


@pytest.mark.parametrize(("low", "high"), [(-0.5, 1.0), (0.0, 255.0)])
def test_values_outside_the_unit_range_are_refused_naming_the_range_seen(low, high):
    images = np.zeros((2, 28, 28), np.float32)
    images[0, 0, 0], images[1, 5, 5] = low, high
    with pytest.raises(InputError, match=f"got values from {low:g} to {high:g}; divide"):
        check_images(images)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_and_infinity_are_refused(bad):
    images = np.full((1, 28, 28), 0.5, np.float32)
    images[0, 3, 3] = bad
    with pytest.raises(InputError, match=r"got values from 0\.5 to 0\.5, and NaN or infinity"):
        check_images(images)


def test_an_all_nan_batch_says_it_has_no_finite_values():
    with pytest.raises(InputError, match="got no finite values, and NaN or infinity"):
        check_images(np.full((1, 28, 28), np.nan, np.float32))


def test_ragged_lists_are_refused_as_something_numpy_cannot_stack():
    ragged = [np.zeros((28, 28)), np.zeros((27, 28))]
    with pytest.raises(InputError, match=r"expected images shaped \(n, 28, 28\); got .*NumPy cannot stack"):
        check_images(ragged)
