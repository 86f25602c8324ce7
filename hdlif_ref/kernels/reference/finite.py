"""Plain-NumPy twin of :mod:`hdlif_ref.kernels.finite`: how many values of an array are NaN or infinite,
or not zero."""
from __future__ import annotations

import numpy as np


def count_nonfinite(x: np.ndarray) -> int:
    """The number of NaN and +-inf values in ``x`` (any shape, any float dtype)."""
    return int(np.count_nonzero(~np.isfinite(x)))


def count_nonzero(x: np.ndarray) -> int:
    """The number of values of ``x`` that are not zero (NaN counts, ``-0`` does not)."""
    return int(np.count_nonzero(x))
