"""Plain-NumPy twin of :mod:`hdlif_ref.kernels.finite`: how many values of an array are NaN or infinite."""
from __future__ import annotations

import numpy as np


def count_nonfinite(x: np.ndarray) -> int:
    """The number of NaN and +-inf values in ``x`` (any shape, any float dtype)."""
    return int(np.count_nonzero(~np.isfinite(x)))
