"""The recycled output arrays of ``kernels._workspace.empty``: memory is handed out again only when
no object made from it is alive, per thread, within the cap; and the kernels that use it write every
element of what they return (their tests pass on memory filled with garbage)."""
from __future__ import annotations

import gc
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hdlif_ref.kernels import _workspace as ws
from hdlif_ref.kernels.hdlif import hdlif_forward
from hdlif_ref.kernels.reference import neurons as ref_neurons

BIG = (64, 32, 8, 8)  # 512 KiB of float32: recycled
ROOT = Path(__file__).resolve().parents[2]
POISONED = os.environ.get("HDLIF_REF_POISON_RECYCLED") == "1"


@pytest.fixture(autouse=True)
def fresh_pool():
    ws.release()
    yield
    ws.release()


def address(a) -> int:
    return np.asarray(a).__array_interface__["data"][0]


def kept_addresses() -> set[int]:
    return {address(raw) for bucket in ws._local.__dict__.get("kept", {}).values() for raw in bucket}


def test_the_reference_counts_of_this_interpreter_can_say_when_a_buffer_is_free():
    assert ws.RECYCLING_WORKS  # CPython with the GIL: otherwise empty() is np.empty and nothing below applies


def test_empty_has_the_shape_dtype_and_order_asked_for():
    for shape, dtype in [(BIG, np.float32), ((3, 70000), np.float64), ((200000,), np.bool_), (100000, np.int64)]:
        a = ws.empty(shape, dtype)
        expected = np.empty(shape, dtype)
        assert a.shape == expected.shape and a.dtype == expected.dtype
        assert a.flags.c_contiguous and a.flags.writeable
        a[...] = 1  # the whole buffer is usable
        assert np.all(a == 1)


MAKERS = {
    "slice": lambda a: a.reshape(-1)[5:],
    "transpose": lambda a: a[1:].transpose(),
    "dtype view": lambda a: a.view(np.int32),
    "memoryview": memoryview,
    "as_strided": lambda a: np.lib.stride_tricks.as_strided(a, shape=(10,), strides=(4,)),
}


@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_an_object_made_from_a_buffer_alone_keeps_it_taken(kind):
    a = ws.empty(BIG, np.float32)
    where = address(a)
    made = MAKERS[kind](a)
    del a
    gc.collect()
    taken = [ws.empty(BIG, np.float32) for _ in range(2)]
    assert where not in {address(t) for t in taken}  # fresh memory instead
    del taken, made
    gc.collect()
    again = [ws.empty(BIG, np.float32) for _ in range(3)]  # the three kept buffers, all free now
    assert where in {address(t) for t in again}  # free once the object is gone: handed out again


def test_a_buffer_in_use_is_never_handed_out_and_keeps_its_values():
    a = ws.empty(BIG, np.float32)
    a[...] = 3.0
    others = [ws.empty(BIG, np.float32) for _ in range(4)]
    for o in others:
        o[...] = -1.0
    assert address(a) not in {address(o) for o in others}
    assert np.all(a == 3.0)


def test_small_arrays_are_ordinary_and_not_kept():
    a = ws.empty((ws.RECYCLE_MIN_BYTES // 4 - 1,), np.float32)
    assert a.flags.owndata and ws.kept_bytes() == 0


def test_the_cap_bounds_the_kept_memory_and_the_kept_buffers_are_the_ones_reused(monkeypatch):
    monkeypatch.setattr(ws, "RECYCLE_MAX_BYTES", 3 * 512 * 1024)
    arrays = [ws.empty(BIG, np.float32) for _ in range(5)]  # all alive: five buffers, three kept
    assert ws.kept_bytes() == 3 * 512 * 1024 and len(kept_addresses()) == 3
    assert len({address(a) for a in arrays}) == 5
    kept = kept_addresses()
    del arrays
    again = [ws.empty(BIG, np.float32) for _ in range(3)]
    assert {address(a) for a in again} == kept and ws.kept_bytes() == 3 * 512 * 1024


def test_a_free_buffer_of_up_to_twice_the_size_serves_a_smaller_request():
    a = ws.empty((300 * 1024,), np.uint8)  # 75 pages
    where = address(a)
    del a
    assert address(ws.empty((200 * 1024,), np.uint8)) == where  # 50 pages: 75 < 2 * 50
    b = ws.empty((100 * 1024,), np.uint8)  # 25 pages: the 75-page buffer (now free again) is too large
    assert address(b) != where


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


def test_recycling_off_is_per_thread_and_gives_the_kept_buffers_back():
    a = ws.empty(BIG, np.float32)
    where = address(a)
    del a
    inside, other = threading.Event(), []

    def other_thread():
        inside.wait()
        b = ws.empty(BIG, np.float32)
        del b
        other.append((address(ws.empty(BIG, np.float32)), ws.kept_bytes()))

    worker = threading.Thread(target=other_thread)
    worker.start()
    with ws.recycling_off():
        inside.set()
        worker.join()
        fresh = ws.empty(BIG, np.float32)
        assert address(fresh) != where and ws.kept_bytes() == 512 * 1024  # fresh here, nothing added
        del fresh
    assert other[0][1] == 512 * 1024  # the other thread went on recycling meanwhile
    assert address(ws.empty(BIG, np.float32)) == where and ws.RECYCLE_MAX_BYTES > 0


@settings(max_examples=25, deadline=None)
@given(T=st.integers(1, 4), N=st.integers(1, 3), C=st.integers(1, 4), S=st.sampled_from([16, 4096]),
       seed=st.integers(0, 2**31 - 1))
def test_a_kernel_on_dirty_recycled_memory_gives_its_twins_bits(T, N, C, S, seed):
    rng = np.random.default_rng(seed)
    I = rng.standard_normal((T, N, C * S)).astype(np.float32)
    u0 = rng.standard_normal((N, C * S)).astype(np.float32)
    lam = rng.uniform(0, 1, (T, C)).astype(np.float32)
    theta = rng.uniform(0.1, 1, (T, C)).astype(np.float32)
    expected = ref_neurons.hdlif_forward(I, u0, lam, theta)
    for call in range(2):
        got = hdlif_forward(I, u0, lam, theta)
        for g, e in zip(got, expected):
            np.testing.assert_array_equal(g, e)
        addresses = {address(g) for g in got if g.nbytes >= ws.RECYCLE_MIN_BYTES}
        if call == 1:
            assert addresses <= kept_addresses()  # the second call ran on the first one's memory
        for g in got:  # dirty it for the second call
            g.reshape(-1).view(np.uint8)[...] = 0xFF
        del got, g


def test_the_poison_of_the_subprocess_run_is_on_there_only():
    from hdlif_ref.kernels import hdlif

    for fresh in (hdlif.empty(BIG, np.float32), hdlif.empty_like(np.zeros(BIG, np.float32))):
        assert np.isnan(fresh).all() == POISONED


#: Tests of the kernels, layers and frozen models that return recycled arrays.
KERNEL_TESTS = ["tests/kernels/test_workspace.py", "tests/kernels/test_twin_gradients.py", "tests/kernels/test_pool.py",
                "tests/kernels/test_norm.py", "tests/kernels/test_conv.py", "tests/kernels/test_inference.py",
                "tests/deploy/test_integer.py", "tests/autograd/test_ops.py", "tests/neurons/test_forward.py",
                "tests/neurons/test_lif.py", "tests/neurons/test_membn.py", "tests/neurons/test_fused.py",
                "tests/neurons/test_quantizer.py"]


@pytest.mark.skipif(POISONED, reason="this test is the one that starts the poisoned run")
def test_the_kernel_tests_pass_on_recycled_memory_full_of_garbage():
    # every array from kernels._workspace.empty arrives filled with NaN / 0xA5 (tests/conftest.py):
    # an element a kernel does not write would differ from its twin
    env = dict(os.environ, HDLIF_REF_POISON_RECYCLED="1")
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *KERNEL_TESTS],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and " failed" not in run.stdout
