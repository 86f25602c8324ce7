"""Scratch arrays that kernels reuse from call to call (per Python thread).

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
"""
from __future__ import annotations

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
    entry = buffers.get(name)
    if entry is None or entry[0].nbytes < nbytes + ALIGN:
        raw = np.empty(nbytes + ALIGN, dtype=np.uint8)
        # the offset of the first aligned byte, kept with the buffer: reading ``raw.ctypes.data`` builds
        # a ctypes object, about 7 us, which every call paid before
        entry = (raw, -raw.ctypes.data % ALIGN)
        buffers[name] = entry
    raw, start = entry
    return raw[start:start + nbytes].view(dtype).reshape(shape)


def release() -> None:
    """Free this thread's scratch buffers."""
    _local.__dict__.pop("buffers", None)
