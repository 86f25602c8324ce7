"""The thread policy (docs/performance.md, "Thread policy"): passive OpenMP waiting, one BLAS thread
inside the convolution kernels, and the user's own settings winning."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import threading

import numba
import pytest

from hdlif_ref.kernels import _blas
from hdlif_ref.kernels._threads import numba_threads, threading_info

PROBE = ("import json, hdlif_ref.kernels.conv; from hdlif_ref.kernels._threads import threading_info; "
         "print(json.dumps(threading_info()))")


def _probe(env_value):
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if env_value is not None:
        env["OMP_WAIT_POLICY"] = env_value
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_importing_the_kernels_makes_openmp_workers_passive():
    info = _probe(None)
    assert info["omp_wait_policy"] == "PASSIVE"
    assert info["policy_applied"] is True  # no parallel kernel ran before the import
    assert info["num_threads"] >= 1


def test_a_wait_policy_set_by_the_user_wins_and_is_reported():
    info = _probe("active")
    assert info["omp_wait_policy"] == "active"
    if info["threading_layer"] == "omp":
        assert info["policy_applied"] is False


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs torch (an OpenMP runtime loaded first)")
def test_an_openmp_runtime_loaded_before_the_kernels_is_reported():
    """torch imported first: Numba's pool shares torch's libgomp, which read its environment before the
    policy was set, so the policy is reported as not applied, unless it was in the environment at start."""
    code = "import torch; " + PROBE
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    info = json.loads(out.stdout.strip().splitlines()[-1])
    if info["threading_layer"] == "omp":
        assert info["policy_applied"] is False
    env["OMP_WAIT_POLICY"] = "PASSIVE"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1])["policy_applied"] is True


def test_numba_threads_sets_and_restores_the_count():
    before = numba.get_num_threads()
    with numba_threads(1) as n:
        assert n == 1 and numba.get_num_threads() == 1
    assert numba.get_num_threads() == before
    with numba_threads(10**6) as n:  # capped at the pool size
        assert n == numba.config.NUMBA_NUM_THREADS
    assert numba.get_num_threads() == before


def test_blas_threads_are_one_inside_kernels_and_restored_after_the_outermost_block():
    if not _blas.blas_thread_control():
        pytest.skip("SciPy's BLAS threads are not controllable here (the fallback is tested in test_conv.py)")
    get, _ = _blas._setters
    before = get()
    with _blas.blas_threads_for_kernels() as threads:
        assert get() == 1 and threads == numba.get_num_threads()
        with _blas.blas_threads_for_kernels():
            assert get() == 1
        assert get() == 1  # the inner block leaving does not restore yet
    assert get() == before


def test_threading_info_keys():
    info = threading_info()
    assert set(info) == {"threading_layer", "num_threads", "omp_wait_policy", "policy_applied"}


# ------------------------------------------------------------------ the threads setting and short kernels
import numpy as np  # noqa: E402

import hdlif_ref.kernels as kernels  # noqa: E402
from hdlif_ref.kernels import _threads, bn_neuron, conv, norm, pool  # noqa: E402
from hdlif_ref.kernels._config import njit_parallel  # noqa: E402


@njit_parallel(cache=False)  # reads Numba's thread count: not cacheable
def _threads_seen(out):
    for i in numba.prange(out.shape[0]):
        out[i] = numba.get_num_threads()


def test_set_num_threads_checks_its_argument_and_num_threads_restores():
    before = kernels.get_num_threads()
    with kernels.num_threads(1) as n:
        assert n == 1 and kernels.get_num_threads() == 1 == numba.get_num_threads()
    assert kernels.get_num_threads() == before
    for bad in (0, -1, numba.config.NUMBA_NUM_THREADS + 1, 1.5, True, "2"):
        with pytest.raises(ValueError, match=r"threads=.* must be an int in \[1, "):
            kernels.set_num_threads(bad)
    assert kernels.get_num_threads() == before


def test_run_uses_one_thread_below_the_threshold_and_restores_the_count():
    seen = np.zeros(64)
    before = numba.get_num_threads()
    _threads.run(_threads_seen, _threads.PARALLEL_MIN_ELEMENTS - 1, seen.size, seen)
    np.testing.assert_array_equal(seen, 1.0)
    assert numba.get_num_threads() == before
    _threads.run(_threads_seen, _threads.PARALLEL_MIN_ELEMENTS, seen.size, seen)
    np.testing.assert_array_equal(seen, before)


def test_current_threads_and_numba_threads_agree_with_numbas_public_functions():
    """The wrappers read and set Numba's count through its C entry points (no per-call locks), per Python
    thread as Numba's own functions do."""
    from numba.np.ufunc import parallel
    calls = _threads._bind()
    assert (calls.get, calls.set, calls.chunk) == (parallel._get_num_threads, parallel._set_num_threads,
                                                   parallel._set_parallel_chunksize)
    before = numba.get_num_threads()
    try:
        for n in range(1, numba.config.NUMBA_NUM_THREADS + 1):
            numba.set_num_threads(n)
            assert _threads.current_threads() == n
            with numba_threads(1):
                assert numba.get_num_threads() == 1 == _threads.current_threads()
            assert numba.get_num_threads() == n
    finally:
        numba.set_num_threads(before)
    seen = []
    with numba_threads(1):
        worker = threading.Thread(target=lambda: seen.append(_threads.current_threads()))
        worker.start()
        worker.join()
    assert seen == [numba.config.NUMBA_NUM_THREADS]  # another thread keeps its own (the pool's size)


def test_chunksize_sets_and_restores_numbas_chunk_size_also_on_error():
    before = numba.get_parallel_chunksize()
    with _threads.chunksize(before + 7):
        assert numba.get_parallel_chunksize() == before + 7
        with _threads.chunksize(3):
            assert numba.get_parallel_chunksize() == 3
        assert numba.get_parallel_chunksize() == before + 7
    assert numba.get_parallel_chunksize() == before
    with pytest.raises(KeyError), _threads.chunksize(5):
        raise KeyError("inside")
    assert numba.get_parallel_chunksize() == before


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs a pool of two threads")
def test_run_sets_the_thread_count_or_the_chunk_size_for_the_call_and_restores_both():
    seen = []

    def kernel(tag):  # run() calls any callable: this one records the settings in force
        seen.append((tag, numba.get_num_threads(), numba.get_parallel_chunksize()))

    before = (numba.get_num_threads(), numba.get_parallel_chunksize())
    with numba_threads(2):
        _threads.run(kernel, _threads.PARALLEL_MIN_ELEMENTS - 1, 64, "short")
        _threads.run(kernel, _threads.PARALLEL_MIN_ELEMENTS, 64, "long")
        assert numba.get_num_threads() == 2 and numba.get_parallel_chunksize() == before[1]
    assert (numba.get_num_threads(), numba.get_parallel_chunksize()) == before
    assert seen == [("short", 1, before[1]), ("long", 2, 64 // (_threads.CHUNKS_PER_THREAD * 2))]


def test_without_numbas_entry_points_the_wrappers_use_its_public_functions(monkeypatch):
    from numba.np.ufunc import parallel
    monkeypatch.setattr(_threads, "_calls", None)
    monkeypatch.setattr(parallel, "_set_parallel_chunksize", None)  # as a Numba without it
    calls = _threads._bind()
    assert _threads._calls is calls
    assert (calls.get, calls.set, calls.chunk) == (numba.get_num_threads, numba.set_num_threads,
                                                   numba.set_parallel_chunksize)
    monkeypatch.undo()  # Numba's own entry point back, and the wrappers' binding with it
    before = numba.get_parallel_chunksize()
    assert calls.chunk(before + 2) == before and numba.get_parallel_chunksize() == before + 2
    assert calls.chunk(before) == before + 2 and calls.get() == numba.get_num_threads()


@pytest.mark.parametrize("elements", [1 << 12, (1 << 20) + 4096])
def test_batch_norm_and_pooling_are_bit_identical_on_one_or_all_threads(elements):
    """Below and above PARALLEL_MIN_ELEMENTS (one thread, then a dynamic schedule)."""
    x = np.random.default_rng(0).standard_normal((16, 16, elements // 256)).astype(np.float32)
    g = np.random.default_rng(1).standard_normal(x.shape).astype(np.float32)
    planes = x.reshape(16, 16, -1, 16)

    def both():
        y, mean, var = norm.batch_norm_train_forward.numba_impl(x, None, None, 1e-5)
        grads = norm.batch_norm_train_backward.numba_impl(g, x, mean, 1 / np.sqrt(var + 1e-5), None, True, True, True)
        c = x.shape[1]
        fused = bn_neuron.bn_neuron_step.numba_impl(x, True, None, None, 1e-5, None, None, np.zeros_like(x),
                                                    np.full(c, 0.5, np.float32), np.ones(c, np.float32),
                                                    bn_neuron.HDLIF, np.float32(0.25), np.float32(15))
        return ((y, mean, var) + grads + (pool.avg_pool2d_forward.numba_impl(planes, 2, 2, 2, 2, 0, 0),)
                + fused[:4])

    with numba_threads(1):
        one = both()
    with numba_threads(numba.config.NUMBA_NUM_THREADS):
        many = both()
    for a, b in zip(one, many):
        np.testing.assert_array_equal(a, b)


def test_the_fused_bn_neuron_kernel_is_launched_by_the_thread_policy(monkeypatch):
    """It once ran its own static prange on every thread, which a busy machine slows 3x (issue 21)."""
    calls = []
    monkeypatch.setattr(bn_neuron, "run", lambda kernel, elements, items, *args: calls.append(
        (kernel, elements, items)) or kernel(*args))
    x = np.random.default_rng(0).standard_normal((4, 3, 10)).astype(np.float32)
    bn_neuron.bn_neuron_step.numba_impl(x, True, None, None, 1e-5, None, None, np.zeros_like(x),
                                        np.full(3, 0.5, np.float32), np.ones(3, np.float32), bn_neuron.HDLIF,
                                        np.float32(0.25), np.float32(15))
    # the statistics (per channel) and the rows (per sample and group of channels: here one group of 3 rows of
    # 10 elements): each its own launch, so that each loop's dynamic chunks are cut from its own iteration count
    assert bn_neuron._rows_per_item(10) >= 3
    assert calls == [(bn_neuron._bn_stats, x.size, 3), (bn_neuron._bn_neuron, x.size, 4)]


@pytest.mark.parametrize("spincount, before, in_time, spins", [
    (None, None, True, False),        # this package's default reached the runtime: workers sleep
    (None, "PASSIVE", True, False),
    (None, "active", True, True),     # the user's choice
    (None, None, False, True),        # a runtime loaded earlier (torch) read an unset policy: libgomp spins
    (None, "passive", False, False),  # ... unless PASSIVE was in the environment from the start
    ("0", "active", True, False),     # GOMP_SPINCOUNT decides when set
    ("30000", "PASSIVE", True, True),
    ("INFINITY", None, True, True),
    ("", None, False, True),          # set but empty: as unset (libgomp's default, which spins)
    ("00", None, False, False),       # libgomp reads a number: 0 in any spelling sleeps
    ("0k", "active", True, False),
    ("2k", "PASSIVE", True, True),
    ("abc", " passive ", True, False),  # a value libgomp cannot read is ignored: the policy decides
    ("abc", None, False, True),
])
def test_idle_workers_spin(spincount, before, in_time, spins):
    assert _threads.idle_workers_spin(spincount, before, in_time) is spins


def _sizes(code_before: str, **env_values) -> list:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(env_values)
    code = (code_before + "import json, hdlif_ref.kernels.conv as c, hdlif_ref.kernels._threads as t; "
            "print(json.dumps([t.WORKERS_SPIN, t.PARALLEL_MIN_ELEMENTS, c.PARALLEL_MIN_MACS]))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_one_thread_sizes_follow_what_idle_workers_do():
    asleep = [False, _threads.PARALLEL_MIN_ELEMENTS_ASLEEP, conv.PARALLEL_MIN_MACS_ASLEEP]
    spinning = [True, _threads.PARALLEL_MIN_ELEMENTS_SPINNING, conv.PARALLEL_MIN_MACS_SPINNING]
    assert spinning[1] < asleep[1] and spinning[2] < asleep[2]
    assert _sizes("") == asleep
    assert _sizes("", GOMP_SPINCOUNT="30000") == spinning
    assert _sizes("", OMP_WAIT_POLICY="ACTIVE") == spinning
    if importlib.util.find_spec("torch") is not None:  # torch's libgomp, loaded first, spins by default
        assert _sizes("import torch; ") == spinning
        assert _sizes("import torch; ", OMP_WAIT_POLICY="PASSIVE") == asleep
