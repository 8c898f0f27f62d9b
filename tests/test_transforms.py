import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nbgan_app.config import TransformConfig
from nbgan_app.transforms import backward, forward

KINDS = [TransformConfig("thesis", 8000.0, 6.0), TransformConfig("released", 20000.0, 1.0)]
counts = st.floats(min_value=0, max_value=1e6, allow_nan=False, width=32)


@pytest.mark.parametrize("t", KINDS, ids=lambda t: t.kind)
def test_zero_maps_to_zero(t):
    assert forward(0.0, t) == 0.0
    assert backward(0.0, t) == 0.0


@pytest.mark.parametrize("t", KINDS, ids=lambda t: t.kind)
def test_continuous_at_cut(t):
    eps = 1e-6 * t.c
    below = forward(np.float64(t.c - eps), t)
    above = forward(np.float64(t.c + eps), t)
    slope = (forward(np.float64(2 * t.c), t) - forward(np.float64(t.c), t)) / t.c
    assert abs(float(above) - float(below)) <= 4 * eps * slope + 1e-6


@pytest.mark.parametrize("t", KINDS, ids=lambda t: t.kind)
@settings(max_examples=200, deadline=None)
@given(a=counts, b=counts)
def test_strictly_monotone(t, a, b):
    if a == b:
        return
    lo, hi = min(a, b), max(a, b)
    fa, fb = forward(np.array([lo, hi]), t)
    assert fa <= fb
    if hi - lo > 1e-3 * max(hi, 1):
        assert fa < fb


@pytest.mark.parametrize("t", KINDS, ids=lambda t: t.kind)
@settings(max_examples=300, deadline=None)
@given(x=counts)
def test_round_trip_float32(t, x):
    y = backward(forward(np.float32(x), t), t)
    assert np.isclose(y, np.float32(x), rtol=2e-6, atol=2e-5)


def test_thesis_values():
    t = KINDS[0]
    # f(c) = ln(c+1)/scale: the log part ends exactly at the cut.
    assert np.isclose(forward(8000.0, t), np.log(8001.0) / 6.0, rtol=1e-6)
    assert np.isclose(backward(-1.0, t), 0.0)  # negative network output clips to no particles


@pytest.mark.backends
@pytest.mark.parametrize("t", KINDS, ids=lambda t: t.kind)
def test_backward_on_tensors_is_the_numpy_backward(t):
    """The critic's count channel (`backward_ops`) gives the counts `backward` gives, clip at 0 included."""
    from keras import ops

    from nbgan_app.transforms import backward_ops

    y = np.concatenate([forward(np.array([0.0, 0.5, 3.0, 450.0, t.c, 3 * t.c]), t), [-0.5]]).astype("float32")
    got = ops.convert_to_numpy(backward_ops(ops.convert_to_tensor(y), t.kind, t.c, t.scale))
    np.testing.assert_allclose(got, backward(y, t), rtol=1e-5, atol=1e-4)
