"""Scratch arrays that kernels reuse from call to call, and recycled output arrays (per Python thread).

A kernel's temporaries (packed inputs, accumulators) of a few megabytes are, when
allocated afresh at every call, fresh pages of memory: the first write to each
4 KiB page is a page fault, and a training step of the spiking ResNet makes
hundreds of such calls. Measured on a 16 -> 16 channel 32x32 convolution
(docs/performance.md, "Register-blocked kernels"): about 900 page faults and
half of the call's time when its temporaries were allocated per call among
other allocations. :func:`scratch` keeps one buffer per name and Python thread,
grown when a larger one is asked for and never shrunk (:func:`release` frees
them). Buffers start on a 64-byte boundary (one vector, one cache line).

Only for temporaries that never leave the kernel: the contents are undefined,
and the next call with the same name overwrites them.

:func:`empty` is for the arrays a kernel *returns* (spikes, membranes, gradients: a
training step of the digits network returns about 10 MB of them). It hands out
memory that this thread allocated before and that no array references any more,
so that the step after the first writes to pages it already touched instead of
fresh ones (docs/performance.md, "Fresh pages"; on this machine a first touch costs
about 0.8 us per 4 KiB page). Whether a buffer is free is read off its reference
count: every object made from it holds a reference to it, directly (a slice, a reshape,
a view: NumPy's ``base`` is the owner of the memory) or through a chain (a
``memoryview``, ``as_strided``, a Numba result), so the count is back at its resting
value exactly when none is alive. The contents are undefined, as with ``np.empty``.
That reading is CPython's reference counting: it is checked when this module is
imported, and where it does not hold (a free-threaded build, say) :func:`empty` is
``np.empty``.
"""
from __future__ import annotations

import bisect
import contextlib
import math
import sys
import threading

import numpy as np

ALIGN = 64
_local = threading.local()


def scratch(name: str, shape, dtype) -> np.ndarray:
    """A C-contiguous array of ``shape`` and ``dtype`` with undefined contents, reused across calls."""
    dtype = np.dtype(dtype)
    count = 1
    for s in shape:
        count *= int(s)
    nbytes = count * dtype.itemsize
    buffers = _local.__dict__.setdefault("buffers", {})
    raw = buffers.get(name)
    if raw is None or raw.nbytes < nbytes + ALIGN:
        raw = np.empty(nbytes + ALIGN, dtype=np.uint8)
        buffers[name] = raw
    start = -raw.ctypes.data % ALIGN
    return raw[start:start + nbytes].view(dtype).reshape(shape)


#: Arrays smaller than this come from ``np.empty`` (the allocator reuses small blocks itself).
RECYCLE_MIN_BYTES = 1 << 16
#: At most this many bytes of buffers are kept for :func:`empty` per thread; beyond it arrays are fresh.
#: 32 MiB: what the digits network's steps keep (7-30 MiB at T = 4), where recycling gains 1.2-1.7x;
#: the spiking ResNet's online step would keep 108 MiB and gain nothing (glibc's own thresholds grow
#: past its large arrays), and STBP at T = 32 would keep 170 MiB (docs/performance.md, "Fresh pages").
RECYCLE_MAX_BYTES = 1 << 25
#: Buffers are kept in buckets of whole pages.
PAGE = 4096


def _resting_refcount() -> int:
    """The reference count a kept buffer shows to ``sys.getrefcount(bucket[i])`` when nothing else holds it."""
    bucket = [np.empty(PAGE, dtype=np.uint8)]
    return sys.getrefcount(bucket[0])


_RESTING = _resting_refcount()


def _refcount_reading_holds() -> bool:
    """Whether the count tells a free buffer from a used one here, as :func:`empty` reads it: exactly
    at rest with nothing made from the buffer, above it with a view, a ``memoryview`` or an array
    built on it alive (not so on a free-threaded build, where counts are deferred)."""
    if getattr(sys, "_is_gil_enabled", lambda: True)() is False:
        return False
    bucket = [np.empty(PAGE, dtype=np.uint8)]
    if sys.getrefcount(bucket[0]) != _RESTING:
        return False
    for make in (lambda raw: raw[1:], memoryview, lambda raw: np.ndarray((PAGE // 4,), np.float32, buffer=raw)):
        made = make(bucket[0])
        if sys.getrefcount(bucket[0]) <= _RESTING:
            return False
        del made
    return sys.getrefcount(bucket[0]) == _RESTING


#: False where reference counts cannot say that a buffer is free: then nothing is recycled.
RECYCLING_WORKS = _refcount_reading_holds()


def empty(shape, dtype) -> np.ndarray:
    """``np.empty(shape, dtype)`` (C order, undefined contents) on memory this thread used before (module doc).

    A buffer is handed out again only once no array made from it is alive; an array of fewer than
    :data:`RECYCLE_MIN_BYTES` bytes, or one that would take the kept buffers past
    :data:`RECYCLE_MAX_BYTES`, is an ordinary ``np.empty`` array.
    """
    dtype = np.dtype(dtype)
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    nbytes = math.prod(shape) * dtype.itemsize
    state = _local.__dict__
    if nbytes < RECYCLE_MIN_BYTES or not RECYCLING_WORKS or state.get("off"):
        return np.empty(shape, dtype=dtype)
    pages = -(-nbytes // PAGE)
    kept = state.get("kept")
    if kept is None:
        kept = state["kept"] = {}
        state["sizes"] = []
        state["kept_bytes"] = 0
    sizes = state["sizes"]
    # a free buffer of pages .. 2 * pages - 1 pages, the smallest size first (memory freed by arrays of
    # other sizes serves too; at most half of a buffer goes unused); within a size the one handed out
    # last first, which is the likeliest to be in the caches (a bucket is kept in order of use)
    for k in range(bisect.bisect_left(sizes, pages), len(sizes)):
        if sizes[k] >= 2 * pages:
            break
        bucket = kept[sizes[k]]
        for i in range(len(bucket) - 1, -1, -1):
            if sys.getrefcount(bucket[i]) == _RESTING:
                raw = bucket.pop(i)
                bucket.append(raw)
                return np.ndarray(shape, dtype=dtype, buffer=raw)
    raw = np.empty(pages * PAGE, dtype=np.uint8)
    if state["kept_bytes"] + raw.nbytes <= RECYCLE_MAX_BYTES:
        if pages not in kept:
            kept[pages] = []
            bisect.insort(sizes, pages)
        kept[pages].append(raw)
        state["kept_bytes"] += raw.nbytes
    return np.ndarray(shape, dtype=dtype, buffer=raw)


def empty_like(a: np.ndarray) -> np.ndarray:
    """:func:`empty` of ``a``'s shape and dtype (always C order)."""
    return empty(a.shape, a.dtype)


def kept_bytes() -> int:
    """Bytes of buffers this thread keeps for :func:`empty` (free or in use)."""
    return int(_local.__dict__.get("kept_bytes", 0))


def set_recycle_limit(nbytes: int) -> None:
    """Keep at most ``nbytes`` bytes of buffers for :func:`empty` in each thread (0: every array is fresh).

    One setting for the process; buffers already kept stay until :func:`release`.
    """
    global RECYCLE_MAX_BYTES
    if isinstance(nbytes, bool) or not isinstance(nbytes, (int, np.integer)) or nbytes < 0:
        raise ValueError(f"nbytes={nbytes!r} must be an int >= 0 (bytes of recycled buffers per thread; 0 turns "
                         f"recycling off)")
    RECYCLE_MAX_BYTES = int(nbytes)


@contextlib.contextmanager
def recycling_off():
    """A block in which :func:`empty` returns fresh arrays in this thread (other threads go on
    recycling); the buffers it keeps stay for after the block (the A/B of ``benchmarks/bench_recycle.py``)."""
    state = _local.__dict__
    was = state.get("off", False)
    state["off"] = True
    try:
        yield
    finally:
        state["off"] = was


def release() -> None:
    """Free this thread's scratch buffers and the buffers kept for :func:`empty` (arrays in use stay valid)."""
    _local.__dict__.pop("buffers", None)
    _local.__dict__.pop("kept", None)
    _local.__dict__.pop("sizes", None)
    _local.__dict__.pop("kept_bytes", None)
