"""Property tests: any input to the parsers gets an answer or digitrec's own error, nothing else.

Bounded for `make test` (a few hundred cases in all); `make fuzz` runs the same properties with
many more examples (HYPOTHESIS_PROFILE=long).
"""

import io
import os

import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from digitrec.data import read_idx
from digitrec.errors import DataError, ImageError, InputError
from digitrec.preprocess import segment, to_mnist
from digitrec.server import _instances

settings.register_profile("ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile(
    "long", max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

IDX_HEADER = st.tuples(
    st.sampled_from([0, 1]), st.sampled_from([0, 8, 9, 11, 12, 13, 14, 7]), st.integers(0, 4)
)


@given(header=IDX_HEADER, dims=st.lists(st.integers(0, 6), max_size=4), body=st.binary(max_size=300))
def test_any_idx_like_bytes_parse_or_raise_a_data_error(tmp_path_factory, header, dims, body):
    zero, code, ndim = header
    raw = bytes([0, zero, code, ndim]) + b"".join(d.to_bytes(4, "big") for d in dims) + body
    path = tmp_path_factory.mktemp("idx") / "f-idx"
    path.write_bytes(raw)
    try:
        array = read_idx(path)
    except DataError as exc:
        assert str(path) in str(exc)
    else:
        assert array.ndim == ndim and array.size * array.itemsize == len(raw) - 4 - 4 * ndim


@given(raw=st.binary(max_size=2000))
def test_any_bytes_as_an_image_are_read_or_refused_with_an_image_error(raw):
    try:
        digit = to_mnist(raw)
    except ImageError:
        return
    assert digit.image.shape == (28, 28) and np.isfinite(digit.image).all()


ARRAYS = hnp.arrays(
    dtype=st.sampled_from([np.uint8, np.int16, np.int64, np.float32, np.float64, np.bool_]),
    shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=40),
)


@given(array=ARRAYS)
@example(array=np.full((1, 1, 3), 1.1342746e38, np.float32))  # once overflowed averaging the channels
def test_any_array_is_normalised_or_refused(array):
    try:
        digit = to_mnist(array)
        digits = segment(array)
    except ImageError:
        return
    assert digit.image.shape == (28, 28) and digit.image.dtype == np.float32
    assert np.isfinite(digit.image).all() and digit.image.min() >= 0 and digit.image.max() <= 1
    assert all(d.image.shape == (28, 28) for d in digits)


@given(array=hnp.arrays(np.float64, (12, 12), elements=st.floats(allow_nan=True, allow_infinity=True)))
def test_nan_and_infinity_in_arrays_are_refused_or_harmless(array):
    try:
        digit = to_mnist(array)
    except ImageError as exc:
        assert "NaN or infinite" in str(exc) or "numeric" in str(exc)
        return
    assert np.isfinite(digit.image).all()


@given(
    pixels=hnp.arrays(np.uint8, st.tuples(st.integers(1, 120), st.integers(1, 120))),
    mode=st.sampled_from(["L", "RGB", "RGBA", "P"]),
    kind=st.sampled_from(["PNG", "JPEG", "GIF", "BMP", "WEBP"]),
)
def test_any_real_image_file_gives_a_valid_digit(pixels, mode, kind):
    image = Image.fromarray(pixels, "L").convert(mode)
    if kind == "JPEG" and mode in ("RGBA", "P"):
        image = image.convert("RGB")
    out = io.BytesIO()
    image.save(out, kind)
    digit = to_mnist(out.getvalue())
    assert digit.image.shape == (28, 28) and np.isfinite(digit.image).all()


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(max_size=3),
    lambda children: st.lists(children, max_size=30),
    max_leaves=1200,
)


@given(instances=st.lists(JSON_VALUES, max_size=3))
def test_any_json_instances_are_accepted_only_as_28x28_unit_floats(instances):
    try:
        images = _instances(instances, limit=256)
    except (InputError, TypeError) as exc:
        assert isinstance(exc, InputError), f"{type(exc).__name__}: {exc}"
        return
    assert images.shape[1:] == (28, 28) and images.min() >= 0 and images.max() <= 1
