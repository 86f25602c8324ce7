"""The thread policy (docs/performance.md, "Thread policy"): passive OpenMP waiting, one BLAS thread
inside the convolution kernels, and the user's own settings winning."""
from __future__ import annotations

import json
import os
import subprocess
import sys

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
