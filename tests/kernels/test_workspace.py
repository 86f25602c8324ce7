"""Scratch buffers (kernels/_workspace.py): aligned, of the asked shape and dtype, reused, grown, released."""
from __future__ import annotations

import numpy as np
import pytest

from hdlif_ref.kernels import _workspace


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.uint8])
def test_a_scratch_array_is_aligned_and_reused_until_a_larger_one_is_asked(dtype):
    _workspace.release()
    a = _workspace.scratch("test.a", (3, 5), dtype)
    assert a.shape == (3, 5) and a.dtype == dtype and a.flags.c_contiguous
    assert a.ctypes.data % _workspace.ALIGN == 0
    b = _workspace.scratch("test.a", (2, 4), dtype)  # smaller: the same memory
    assert b.ctypes.data == a.ctypes.data and b.ctypes.data % _workspace.ALIGN == 0
    other = _workspace.scratch("test.b", (2, 4), dtype)  # another name: its own memory
    assert not np.shares_memory(other, a)
    big = _workspace.scratch("test.a", (1000, 1000), dtype)  # larger: a new, aligned buffer
    assert big.shape == (1000, 1000) and big.ctypes.data % _workspace.ALIGN == 0
    again = _workspace.scratch("test.a", (7,), dtype)
    assert again.ctypes.data == big.ctypes.data
    _workspace.release()
    fresh = _workspace.scratch("test.a", (7,), dtype)
    assert fresh.ctypes.data % _workspace.ALIGN == 0
    # many growths (each a new buffer, wherever malloc puts it): every one aligned, so an offset kept from
    # an older buffer would show
    for size in range(8, 8 + 40 * 997, 997):
        grown = _workspace.scratch("test.a", (size,), dtype)
        assert grown.shape == (size,) and grown.ctypes.data % _workspace.ALIGN == 0
    _workspace.release()
