"""Thread counts of both sides of a benchmark: torch, our kernels (Numba) and the BLAS libraries.

Import this before ``hdlif_ref``'s kernels (``bench_e2e`` does): torch is imported
first, so its OpenMP runtime reads the environment before our kernels set
``OMP_WAIT_POLICY=PASSIVE`` for Numba's pool (docs/performance.md, "Thread policy").
"""
from __future__ import annotations

import contextlib
import os

try:  # before hdlif_ref's kernels: torch's OpenMP runtime reads its environment when it loads
    import torch
except ImportError:  # pragma: no cover - optional
    torch = None
# What torch's OpenMP runtime saw (the project's kernels set OMP_WAIT_POLICY only for their own pool, later).
TORCH_OMP_POLICY = None if torch is None else os.environ.get("OMP_WAIT_POLICY", "unset (libgomp default)")

import numba


def _kernels_set_num_threads():
    """The kernels' own ``set_num_threads`` where the package has one (issue 21), else ``None`` (Numba's)."""
    try:
        from hdlif_ref import kernels
    except ImportError:  # pragma: no cover
        return None
    fn = getattr(kernels, "set_num_threads", None)
    return fn if callable(fn) else None


def _set_ours(n: int) -> str:
    fn = _kernels_set_num_threads()
    if fn is not None:
        fn(n)
        return "hdlif_ref.kernels.set_num_threads"
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    return "numba.set_num_threads"


@contextlib.contextmanager
def pinned_threads(n: int):
    """Give both sides ``n`` threads (torch intra-op, our kernels, the BLAS libraries through threadpoolctl)
    for the block, restoring the previous counts after; yields what is set. Nests.

    Order matters: SciPy's BLAS (which our kernels call) is loaded before the limits are
    taken, so they reach it; and torch's and our counts are restored only after
    threadpoolctl has restored the BLAS libraries, whose restore can reset the OpenMP
    thread count that ``torch.get_num_threads`` reads (seen: a nested block left torch on
    2 threads inside a 1-thread run). A count that is not back afterwards raises.
    """
    from hdlif_ref.kernels import _blas  # noqa: F401 (loads SciPy's BLAS: the limits below reach it)
    from hdlif_ref.kernels._threads import threading_info

    previous_numba = numba.get_num_threads()
    previous_torch = torch.get_num_threads() if torch is not None else None
    try:
        with contextlib.ExitStack() as stack:
            info = {"requested": n}
            try:
                from threadpoolctl import threadpool_info, threadpool_limits

                stack.enter_context(threadpool_limits(n, user_api="blas"))
            except ImportError:  # pragma: no cover
                threadpool_info = None
            info["ours_set_by"] = _set_ours(n)
            info["numba"] = numba.get_num_threads()
            if torch is not None:
                torch.set_num_threads(n)
                info["torch_intra_op"] = torch.get_num_threads()
                info["torch_interop"] = torch.get_num_interop_threads()
            info["blas"] = ("threadpoolctl not installed: BLAS libraries keep their default thread counts"
                            if threadpool_info is None else
                            [{k: d.get(k) for k in ("internal_api", "prefix", "num_threads", "filepath")}
                             for d in threadpool_info() if d.get("user_api") == "blas"])
            info["numba_runtime"] = threading_info()
            info["omp_wait_policy_seen_by_torch"] = TORCH_OMP_POLICY
            yield info
    finally:
        _set_ours(previous_numba)
        if previous_torch is not None:
            torch.set_num_threads(previous_torch)
    if numba.get_num_threads() != previous_numba or (torch is not None and torch.get_num_threads() != previous_torch):
        raise RuntimeError(f"pinned_threads({n}): thread counts not restored (numba {numba.get_num_threads()} "
                           f"for {previous_numba}, torch {torch.get_num_threads() if torch else None} for "
                           f"{previous_torch})")


def blas_summary(info: dict) -> str:
    """The BLAS libraries' thread counts, ``"2, 2"``, or ``"-"``."""
    blas = info.get("blas")
    return ", ".join(str(b["num_threads"]) for b in blas) if isinstance(blas, list) else "-"
