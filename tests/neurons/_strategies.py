"""Hypothesis strategies for the neuron tests: shapes, parameters, and values that hit thresholds.

Values are drawn from a dyadic grid (exact in float32 and float64) mixed with
arbitrary floats, and the thresholds from the same grid, so that ``m_t = theta_t``
happens exactly and often (SPEC E3: ``H(0) = 1``).
"""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

GRID = [-1.5, -1.0, -0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0]
VALUES = st.one_of(st.sampled_from(GRID), st.floats(-3.0, 3.0, allow_nan=False, allow_subnormal=False, width=32))
LAMS = st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0])
THETAS = st.sampled_from([0.25, 0.5, 1.0, 1.25])


@st.composite
def step_shapes(draw, min_dims=1, max_dims=4, min_side=1, max_side=4, channel=False):
    """A step shape ``[N, ...]`` (``channel``: at least ``[N, C]``), small sides."""
    min_dims = max(min_dims, 2) if channel else min_dims
    return draw(hnp.array_shapes(min_dims=min_dims, max_dims=max(max_dims, min_dims), min_side=min_side,
                                 max_side=max_side))


@st.composite
def neuron_case(draw, dtype=None, per_channel=None, max_T=5, min_side=1, max_side=4, max_dims=4):
    """``(I [T, N, ...], lam, theta)`` arrays; per-channel parameters are ``[T, C]`` with ``C`` = dim 1 of a step."""
    dtype = draw(st.sampled_from([np.float32, np.float64])) if dtype is None else dtype
    per_channel = draw(st.booleans()) if per_channel is None else per_channel
    T = draw(st.integers(1, max_T))
    step = draw(step_shapes(channel=per_channel, min_side=min_side, max_side=max_side, max_dims=max_dims))
    I = draw(hnp.arrays(dtype, (T,) + step, elements=VALUES))
    pshape = (T, step[1]) if per_channel else (T,)
    lam = draw(hnp.arrays(dtype, pshape, elements=LAMS))
    theta = draw(hnp.arrays(dtype, pshape, elements=THETAS))
    return I, lam, theta
