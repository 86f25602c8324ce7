"""``ternary_codes`` (SPEC E12) against its earlier, slower form: the same codes and scales, bit for bit."""
from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from hdlif_ref.kernels.weight_codes import ternary_codes


def ternary_codes_where(w):
    """The earlier implementation: ``np.where`` for the kept magnitudes, ``sum`` for the count."""
    flat = np.abs(w.reshape(w.shape[0], -1))
    delta = 0.7 * np.mean(flat, axis=1, keepdims=True)
    keep = flat > delta
    kept = keep.sum(axis=1)
    total = np.where(keep, flat, 0).sum(axis=1)
    a = np.divide(total, kept, out=np.zeros_like(total), where=kept > 0)
    codes = (np.sign(w.reshape(w.shape[0], -1)) * keep).astype(np.int8).reshape(w.shape)
    return codes, a.astype(w.dtype)


@given(st.sampled_from([np.float32, np.float64]).flatmap(lambda dt: hnp.arrays(
    dt, hnp.array_shapes(min_dims=2, max_dims=4, max_side=9),
    elements=st.floats(-1e3, 1e3, width=32) | st.sampled_from([0.0, np.nan, np.inf, -np.inf]))))
def test_ternary_codes_equal_the_where_form(w):
    with np.errstate(invalid="ignore", over="ignore"):
        codes, a = ternary_codes(w)
        ref_codes, ref_a = ternary_codes_where(w)
    np.testing.assert_array_equal(codes, ref_codes)
    np.testing.assert_array_equal(a, ref_a)
