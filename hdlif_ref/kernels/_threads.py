"""What Numba's parallel runtime is using: threading layer and thread count."""
from __future__ import annotations

import numba
import numpy as np

from ._config import njit_parallel


@njit_parallel
def _touch_threads(x):
    # A trivial prange loop: Numba picks its threading layer on the first parallel call.
    for i in numba.prange(x.shape[0]):
        x[i] = i


def threading_info() -> dict:
    """``{"threading_layer": name, "num_threads": n}`` after starting Numba's thread pool."""
    _touch_threads(np.zeros(4))
    return {"threading_layer": numba.threading_layer(), "num_threads": numba.get_num_threads()}
