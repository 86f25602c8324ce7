"""The recycled output arrays of ``kernels._workspace.empty``: memory is handed out again only when
no array made from it is alive, per thread, within the cap; and kernels that use it give the same bits."""
from __future__ import annotations

import gc
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hdlif_ref.kernels import _workspace as ws
from hdlif_ref.kernels.hdlif import hdlif_forward
from hdlif_ref.kernels.reference import neurons as ref_neurons

BIG = (64, 32, 8, 8)  # 512 KiB of float32: recycled


@pytest.fixture(autouse=True)
def fresh_pool():
    ws.release()
    yield
    ws.release()


def address(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


def test_empty_has_the_shape_dtype_and_order_asked_for():
    for shape, dtype in [(BIG, np.float32), ((3, 70000), np.float64), ((200000,), np.bool_), (100000, np.int64)]:
        a = ws.empty(shape, dtype)
        expected = np.empty(shape, dtype)
        assert a.shape == expected.shape and a.dtype == expected.dtype
        assert a.flags.c_contiguous and a.flags.writeable
        a[...] = 1  # the whole buffer is usable
        assert np.all(a == 1)


def test_a_buffer_comes_back_only_after_every_array_made_from_it_is_gone():
    a = ws.empty(BIG, np.float32)
    where = address(a)
    b = ws.empty(BIG, np.float32)
    assert address(b) != where  # a is alive
    views = [a.reshape(-1)[5:], a[1:].transpose(), a.view(np.int32), memoryview(a)]
    del a
    for keep in views:  # each derived object alone keeps the memory taken
        others = [v for v in views if v is not keep]
        del others
        c = ws.empty(BIG, np.float32)
        assert address(c) not in (where,)
        del c
    del views, keep
    gc.collect()
    # now free: reused (with the buffer the loop's arrays took; b's stays taken)
    taken = [ws.empty(BIG, np.float32) for _ in range(2)]
    assert where in {address(t) for t in taken} and address(b) not in {address(t) for t in taken}
    assert ws.kept_bytes() == 3 * 512 * 1024


def test_a_recycled_array_is_not_written_by_its_previous_owner():
    a = ws.empty(BIG, np.float32)
    a[...] = 7.0
    del a
    b = ws.empty(BIG, np.float32)
    b[...] = 3.0
    c = ws.empty(BIG, np.float32)  # b is alive: c must be other memory
    c[...] = -1.0
    assert np.all(b == 3.0) and np.all(c == -1.0)


def test_small_arrays_are_ordinary_and_not_kept():
    a = ws.empty((ws.RECYCLE_MIN_BYTES // 4 - 1,), np.float32)
    assert a.flags.owndata and ws.kept_bytes() == 0


def test_the_cap_bounds_the_kept_memory(monkeypatch):
    monkeypatch.setattr(ws, "RECYCLE_MAX_BYTES", 3 * 512 * 1024)
    arrays = [ws.empty(BIG, np.float32) for _ in range(5)]  # all alive: five buffers, three kept
    assert ws.kept_bytes() == 3 * 512 * 1024
    assert len({address(a) for a in arrays}) == 5
    del arrays
    again = [ws.empty(BIG, np.float32) for _ in range(3)]
    assert ws.kept_bytes() == 3 * 512 * 1024  # the kept three are reused, none added


def test_threads_keep_their_own_buffers():
    a = ws.empty(BIG, np.float32)
    where = address(a)
    del a
    seen = []
    worker = threading.Thread(target=lambda: seen.append(address(ws.empty(BIG, np.float32))))
    worker.start()
    worker.join()
    assert seen[0] != where  # the other thread took its own (this thread's buffer stayed allocated)
    assert address(ws.empty(BIG, np.float32)) == where


def test_release_frees_the_pool_and_leaves_arrays_in_use_valid():
    a = ws.empty(BIG, np.float32)
    a[...] = 2.0
    ws.release()
    assert ws.kept_bytes() == 0
    b = ws.empty(BIG, np.float32)
    b[...] = 5.0
    assert np.all(a == 2.0) and address(a) != address(b)


@settings(max_examples=25, deadline=None)
@given(T=st.integers(1, 4), N=st.integers(1, 3), C=st.integers(1, 4), S=st.sampled_from([1, 16, 4096]),
       seed=st.integers(0, 2**31 - 1))
def test_a_kernel_on_recycled_memory_gives_its_twins_bits_call_after_call(T, N, C, S, seed):
    # hdlif_forward returns recycled arrays once they are large: dirty memory from the call before
    # (filled with NaN here) must not show through
    rng = np.random.default_rng(seed)
    I = rng.standard_normal((T, N, C * S)).astype(np.float32)
    u0 = rng.standard_normal((N, C * S)).astype(np.float32)
    lam = rng.uniform(0, 1, (T, C)).astype(np.float32)
    theta = rng.uniform(0.1, 1, (T, C)).astype(np.float32)
    expected = ref_neurons.hdlif_forward(I, u0, lam, theta)
    for _ in range(2):
        got = hdlif_forward(I, u0, lam, theta)
        for g, e in zip(got, expected):
            np.testing.assert_array_equal(g, e)
        for g in got:
            if g.dtype.kind == "f":
                g[...] = np.nan
        del got


def test_a_limit_of_zero_turns_recycling_off_and_bad_limits_are_refused():
    from hdlif_ref import kernels

    previous = ws.RECYCLE_MAX_BYTES
    try:
        kernels.set_recycle_limit(0)
        arrays = [ws.empty(BIG, np.float32) for _ in range(3)]
        assert kernels.kept_bytes() == 0 and len({address(a) for a in arrays}) == 3
        for bad in (-1, 1.5, True, "1"):
            with pytest.raises(ValueError, match="nbytes=.* must be an int >= 0"):
                kernels.set_recycle_limit(bad)
    finally:
        kernels.set_recycle_limit(previous)
    ws.empty(BIG, np.float32)
    assert kernels.kept_bytes() == 512 * 1024
    kernels.release_memory()
    assert kernels.kept_bytes() == 0


def test_recycling_off_sets_the_kept_buffers_aside_and_gives_them_back():
    a = ws.empty(BIG, np.float32)
    where = address(a)
    del a
    with ws.recycling_off():
        b = ws.empty(BIG, np.float32)
        assert address(b) != where and ws.kept_bytes() == 0  # fresh, and not kept
        del b
    assert ws.kept_bytes() == 512 * 1024
    assert address(ws.empty(BIG, np.float32)) == where
