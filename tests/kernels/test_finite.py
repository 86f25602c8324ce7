"""count_nonfinite: the Numba kernel against its NumPy twin and against a plain loop over math.isfinite."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hdlif_ref.kernels import finite

SPECIALS = [0.0, -0.0, 1.0, -2.5, np.inf, -np.inf, np.nan, 3.4e38, -3.4e38, 1e-45, 1.7e308]


@settings(max_examples=80, deadline=None)
@given(shape=st.lists(st.integers(0, 7), min_size=0, max_size=4), dtype=st.sampled_from([np.float32, np.float64]),
       seed=st.integers(0, 2**31 - 1), transpose=st.booleans())
def test_counts_what_a_plain_loop_counts(shape, dtype, seed, transpose):
    rng = np.random.default_rng(seed)
    with np.errstate(over="ignore"):  # 1.7e308 overflows float32 to inf: one more value to count
        x = rng.choice(np.array(SPECIALS), size=tuple(shape)).astype(dtype)
    if transpose:  # not contiguous: the kernel gets a copy
        x = x.T
    expected = sum(0 if math.isfinite(float(v)) else 1 for v in x.ravel())
    assert finite.count_nonfinite.numba_impl(x) == expected
    assert finite.count_nonfinite.numpy_impl(x) == expected


def test_every_position_of_a_long_array_is_seen():
    """A non-finite value in any lane of a vectorized loop, and in its scalar tail."""
    for value in (np.nan, np.inf, -np.inf):
        for n in (1, 7, 8, 9, 31, 64, 1000):
            for at in range(n):
                x = np.ones(n, np.float32)
                x[at] = value
                assert finite.count_nonfinite.numba_impl(x) == 1, (value, n, at)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_other_float_dtypes_use_the_twin(dtype):
    x = np.array([1, np.nan, np.inf, 2], dtype=dtype)
    assert finite.count_nonfinite.numba_impl(x) == 2


# ------------------------------------------------------------------ count_nonzero
@settings(max_examples=80, deadline=None)
@given(shape=st.lists(st.integers(0, 7), min_size=0, max_size=4), dtype=st.sampled_from([np.float32, np.float64]),
       seed=st.integers(0, 2**31 - 1), transpose=st.booleans())
def test_count_nonzero_counts_what_a_plain_loop_counts(shape, dtype, seed, transpose):
    """NaN and infinities count, ``+0`` and ``-0`` do not; any layout."""
    rng = np.random.default_rng(seed)
    with np.errstate(over="ignore"):
        x = rng.choice(np.array(SPECIALS), size=tuple(shape)).astype(dtype)
    if transpose:
        x = x.T
    expected = sum(0 if float(v) == 0.0 else 1 for v in x.ravel())
    assert finite.count_nonzero.numba_impl(x) == expected
    assert finite.count_nonzero.numpy_impl(x) == expected


def test_count_nonzero_sees_every_position_and_other_dtypes():
    for n in (1, 7, 8, 9, 31, 64, 1000):
        for at in range(n):
            x = np.zeros(n, np.float32)
            x[at] = -1e-45
            assert finite.count_nonzero.numba_impl(x) == 1, (n, at)
    for dtype in (np.float16, np.int64, np.bool_):  # no kernel: the twin answers
        x = np.array([0, 1, 0, 2], dtype=dtype)
        assert finite.count_nonzero.numba_impl(x) == 2
