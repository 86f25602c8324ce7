"""Element-wise passes of the frozen model (:mod:`hdlif_ref.deploy.frozen`), in place and fused.

* ``scale_shift_(y, scale, bias)``: a synapse's output times its folded per-channel scale plus
  its folded bias (ternary ``a_c``, batch norm, Mem-BN; docs/deploy.md), in one pass instead
  of NumPy's two, on both cores;
* ``spike_levels_(s, step, qmax)``: the integer spike level ``clip(round(s / step), 0, qmax)``
  of SPEC E13 (``round`` half to even), in one pass instead of three;
* ``hdlif_levels(I, u0, lam, theta, step, qmax)``: an HD-LIF forward (SPEC E1, E2) that writes each
  spike's level (E13) instead of the spike, and no firing mask (inference has no backward): the
  forward kernel and ``spike_levels_`` in one pass.

Each gives its twin's (:mod:`.reference.inference`) results bit for bit: the same operations
in the same order per element (``fastmath`` is off, so ``y * a + b`` is not contracted into a
fused multiply-add). Each ``prange`` iteration writes its own rows or block. The public
functions check their arguments, on both backends, before the dispatched kernel runs.
"""
from __future__ import annotations

import numpy as np
from numba import prange

from ._backend import dispatch
from ._blocking import BLOCK, launch
from ._config import njit_parallel
from ._threads import run
from .reference import inference as _ref


@njit_parallel
def _scale_shift(y, scale, bias):
    """``y: [T, N, C, L]`` in place; ``scale: [Ts, C]``, ``bias: [Tb, C]``, ``Ts`` and ``Tb`` 1 or ``T``."""
    T, N, C = y.shape[0], y.shape[1], y.shape[2]
    scale_per_step, bias_per_step = scale.shape[0] > 1, bias.shape[0] > 1
    # one iteration per (t, n), the channels inside: three integer divisions per row cost more than a
    # classifier's one-element rows (30 against 3 us for [4, 64, 10, 1])
    for tn in prange(T * N):
        t, n = tn // N, tn % N
        ts, tb = (t if scale_per_step else 0), (t if bias_per_step else 0)
        for c in range(C):
            a = scale[ts, c]
            b = bias[tb, c]
            r = y[t, n, c]
            for k in range(r.shape[0]):
                r[k] = r[k] * a + b


@njit_parallel
def _spike_levels(s, step, qmax, block):
    E = s.shape[0]
    zero = s.dtype.type(0)
    for item in prange((E + block - 1) // block):
        seg = s[item * block:min(E, (item + 1) * block)]
        for j in range(seg.shape[0]):
            seg[j] = min(max(np.rint(seg[j] / step), zero), qmax)


@njit_parallel
def _hdlif_levels(I, u0, lam, theta, block, step, qmax, levels, u_last):
    # kernels/hdlif.py's forward (its layout, items and per-element operations), then SPEC E13's level of each
    # spike s* as _spike_levels computes it, written in place of s*. A copy of that kernel's loop on purpose:
    # sharing it through an inlined segment helper with a constant flag made the training forward 20-30% slower
    # on 64-element channel segments (measured); tests/kernels/test_inference.py holds the two bit-equal.
    T, N, F = I.shape
    S = F // lam.shape[1]
    zero = I.dtype.type(0)
    nfb = (F + block - 1) // block
    for item in prange(N * nfb):
        n = item // nfb
        f0 = (item % nfb) * block
        f1 = min(f0 + block, F)
        u = u0[n, f0:f1].copy()
        for t in range(T):
            f = f0
            while f < f1:  # one channel segment at a time: lam, theta are loop constants
                c = f // S
                fe = min(f1, (c + 1) * S)
                lam_tc = lam[t, c]
                theta_tc = theta[t, c]
                u_seg = u[f - f0:fe - f0]
                I_seg, q_seg = I[t, n, f:fe], levels[t, n, f:fe]
                for j in range(fe - f):
                    m = lam_tc * u_seg[j] + I_seg[j]  # E1
                    fired = m >= theta_tc  # E2, H(0) = 1
                    s = m - theta_tc if fired else zero
                    u_seg[j] = theta_tc if fired else m
                    q_seg[j] = min(max(np.rint(s / step), zero), qmax)  # E13
                f = fe
        u_last[n, f0:f1] = u


def _scale_shift_numba(y, scale, bias):
    T, N, C = y.shape[:3]
    s = np.ascontiguousarray(np.reshape(scale, (-1, C)), dtype=y.dtype)
    b = np.ascontiguousarray(np.reshape(bias, (-1, C)), dtype=y.dtype)
    if y.size:  # T * N iterations (the kernel's loop), chunked by the thread policy
        run(_scale_shift, y.size, T * N, y.reshape(T, N, C, -1), s, b)
    return y


def _spike_levels_numba(s, step, qmax):
    flat = s.reshape(-1)
    if flat.size:
        launch(_spike_levels, flat.size, flat, s.dtype.type(step), s.dtype.type(qmax), BLOCK)
    return s


def _hdlif_levels_numba(I, u0, lam, theta, step, qmax, out=None):
    levels, u_last = out if out is not None else (np.empty_like(I), np.empty_like(u0))
    if I.size:
        launch(_hdlif_levels, I.size, I, u0, lam, theta, BLOCK, I.dtype.type(step), I.dtype.type(qmax), levels,
               u_last)
    else:
        u_last[...] = u0
    return levels, u_last


_scale_shift_kernel = dispatch(_scale_shift_numba, _ref.scale_shift_)
_spike_levels_kernel = dispatch(_spike_levels_numba, _ref.spike_levels_)
_hdlif_levels_kernel = dispatch(_hdlif_levels_numba, _ref.hdlif_levels)


def _check_in_place(name, a):
    if not isinstance(a, np.ndarray) or a.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name} must be a float32 or float64 ndarray (updated in place), got "
                        f"{type(a).__name__} {getattr(a, 'dtype', '')}")
    if not (a.flags.c_contiguous and a.flags.writeable):
        raise ValueError(f"{name} must be a writeable C-contiguous array (updated in place); this one "
                         f"of shape {a.shape} is {'not contiguous' if not a.flags.c_contiguous else 'read-only'}")


def scale_shift_(y, scale, bias):
    """In place ``y[t, n, c, ...] = y[t, n, c, ...] * scale[t, c] + bias[t, c]``; returns ``y``.

    ``y: [T, N, C, ...]`` float32/float64, C-contiguous, writeable; ``scale`` and ``bias`` each
    ``[C]``, ``[1, C]`` (every step) or ``[T, C]`` (per step), cast to ``y``'s dtype first (as
    the frozen model casts its weights). The product is rounded, then the sum: the same result
    bit for bit on both backends (docs/deploy.md).
    """
    _check_in_place("y", y)
    if y.ndim < 3:
        raise ValueError(f"y must be [T, N, C, ...], got shape {y.shape}")
    T, C = y.shape[0], y.shape[2]
    for name, p in (("scale", scale), ("bias", bias)):
        if np.shape(p) not in ((C,), (1, C), (T, C)):
            raise ValueError(f"{name} must be [C], [1, C] or [T, C] with T={T}, C={C} (y is {y.shape}); "
                             f"got {np.shape(p)}")
    return _scale_shift_kernel(y, scale, bias)


def spike_levels_(s, step, qmax):
    """In place ``s = clip(round(s / step), 0, qmax)`` (SPEC E13's integer level, half to even); returns ``s``.

    ``s`` float32/float64, C-contiguous, writeable; ``step > 0`` and ``qmax`` are cast to ``s``'s dtype.
    """
    _check_in_place("s", s)
    _check_levels(s.dtype, step, qmax)
    return _spike_levels_kernel(s, step, qmax)


def _check_levels(dtype, step, qmax) -> None:
    """``step`` must stay ``> 0`` once cast to ``dtype`` (a float32 ``1e-46`` would be 0: NaN levels) and ``qmax``
    must be ``>= 0`` (E13's levels are ``0..qmax``)."""
    if not (isinstance(step, (int, float, np.number)) and dtype.type(step) > 0):
        raise ValueError(f"step must be > 0 in {dtype}, got {step!r}")
    if not (isinstance(qmax, (int, float, np.number)) and qmax >= 0):
        raise ValueError(f"qmax must be >= 0, got {qmax!r}")


def hdlif_levels(I, u0, lam, theta, step, qmax, out=None):
    """HD-LIF's forward (SPEC E1, E2) with each spike written as its integer level (E13): ``(levels, u_last)``.

    ``levels = clip(round(s* / step), 0, qmax)`` (half to even) where :func:`.hdlif.hdlif_forward` gives
    ``s*``, bit for bit what that forward followed by :func:`spike_levels_` gives, in one pass and without the
    firing masks (the frozen model's neurons: no backward). Layout as the forward's: ``I: [T, N, F]``,
    ``u0: [N, F]``, ``lam, theta: [T, C]`` with ``F`` a multiple of ``C``, all C-contiguous float32/float64 of
    one dtype; ``step > 0`` and ``qmax`` are cast to it. ``out``: ``(levels, u_last)`` arrays of those shapes
    and dtype to write into (returned).
    """
    if not isinstance(I, np.ndarray) or I.dtype not in (np.float32, np.float64) or I.ndim != 3:
        raise TypeError(f"I must be a float32/float64 [T, N, F] array, got {getattr(I, 'dtype', type(I).__name__)} "
                        f"{getattr(I, 'shape', '')}")
    T, N, F = I.shape
    for name, a, shape in (("I", I, None), ("u0", u0, (N, F)), ("lam", lam, None), ("theta", theta, None)):
        if not isinstance(a, np.ndarray) or a.dtype != I.dtype:
            raise TypeError(f"{name} must be a {I.dtype} array (I's dtype), got "
                            f"{getattr(a, 'dtype', type(a).__name__)}")
        if not a.flags.c_contiguous:
            raise ValueError(f"{name} must be C-contiguous")
        if shape is not None and a.shape != shape:
            raise ValueError(f"{name} must have shape {shape} (I is {I.shape}), got {a.shape}")
    if lam.ndim != 2 or lam.shape != theta.shape or lam.shape[0] != T or F % max(lam.shape[1], 1) or not lam.shape[1]:
        raise ValueError(f"lam and theta must both be [T={T}, C] with C dividing F={F}, got {lam.shape} and "
                         f"{theta.shape}")
    _check_levels(I.dtype, step, qmax)
    if out is not None:
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise ValueError(f"out must be a pair (levels, u_last), got {type(out).__name__}")
        for name, a, shape in (("out[0] (levels)", out[0], I.shape), ("out[1] (u_last)", out[1], u0.shape)):
            if not isinstance(a, np.ndarray) or a.shape != shape or a.dtype != I.dtype or not a.flags.c_contiguous \
                    or not a.flags.writeable:
                raise ValueError(f"{name} must be a writeable C-contiguous {I.dtype} array of shape {shape}, got "
                                 f"{getattr(a, 'dtype', type(a).__name__)} {getattr(a, 'shape', '')}")
    return _hdlif_levels_kernel(I, u0, lam, theta, step, qmax, out=out)


# ---------------------------------------------------------------------------- integer synapses
@njit_parallel
def _conv_levels(x, codes, runs, d, inv_d, sh, sw, ph, pw, Ho, Wo, N, scale, bias, out):
    """Event-driven ``codes (*) levels`` in int32, then ``(acc * inv_d) * scale + bias`` per output channel.

    ``x: [B, C, H, W]`` holds ``level / d`` (exact: ``d`` a power of two); ``codes: [C, kh, kw, O]``
    int32; ``out: [B, O, Ho * Wo]``; image ``b`` is step ``b // N``. Only non-zero inputs are
    visited: each adds ``level * codes[c, i, j, :]`` (a contiguous run over the output channels)
    to the outputs it reaches. With ``runs`` (column stride 1 and ``pw <= kw - 1``; the caller then
    passes the codes flipped along ``kw``), the ``kw`` taps of one kernel row reach ``kw`` consecutive
    output columns: the accumulators get ``kw - 1 - pw`` padding columns on the left and ``pw`` on the
    right, and each kernel row is one run of ``kw * O`` additions instead of ``kw`` runs of ``O`` (the
    padding columns take the taps that fall outside and are never read). Integer sums: the order does
    not change them. An image without any non-zero input (the deep layers of a network that is mostly
    silent) gets the epilogue's value for ``acc = 0`` without accumulators.
    """
    B, C, H, W = x.shape
    kh, kw, O = codes.shape[1], codes.shape[2], codes.shape[3]
    scale_per_step, bias_per_step = scale.shape[0] > 1, bias.shape[0] > 1
    # the output row p that input row i reaches through kernel row di (-1: none), likewise columns:
    # tables, so that the event loop does no integer division
    p_of = np.full((H, kh), -1, dtype=np.int64)
    for i in range(H):
        for di in range(kh):
            pn = i + ph - di
            if pn >= 0 and pn % sh == 0 and pn // sh < Ho:
                p_of[i, di] = pn // sh
    q_of = np.full((W, kw), -1, dtype=np.int64)
    for j in range(W):
        for dj in range(kw):
            qn = j + pw - dj
            if qn >= 0 and qn % sw == 0 and qn // sw < Wo:
                q_of[j, dj] = qn // sw
    # accumulator columns: output column q is column q + q_off of the accumulators
    Wa, q_off = (W + kw - 1, kw - 1 - pw) if runs else (Wo, 0)
    flat_codes = codes.reshape(-1)  # [C, kh, kw, O] flat
    for b in prange(B):
        t = b // N
        flat = x[b].reshape(-1)
        first = 0
        while first < flat.shape[0] and flat[first] == 0:
            first += 1
        if first == flat.shape[0]:  # no event: every output is the epilogue below on acc = 0
            y = x.dtype.type(0) * inv_d
            for o in range(O):
                value = y * scale[t if scale_per_step else 0, o] + bias[t if bias_per_step else 0, o]
                dst = out[b, o]
                for k in range(Ho * Wo):
                    dst[k] = value
            continue
        acc = np.zeros(Ho * Wa * O, dtype=np.int32)  # [Ho, Wa, O]
        for c in range(C):
            code0 = c * kh * kw * O  # codes[c] in the flat codes
            for i in range(H):
                for j in range(W):
                    v = x[b, c, i, j]
                    if v == 0:
                        continue
                    level = np.int32(v * d)
                    for di in range(kh):
                        p = p_of[i, di]
                        if p < 0:
                            continue
                        # the accumulators through a slice, the codes by unsigned index into the flat codes
                        # (no index wraparound test; a view of the shared codes array per event made every
                        # event update its reference count: 7-9% of the call, measured)
                        if runs:  # accumulator columns j .. j + kw - 1
                            start = (p * Wa + j) * O
                            row = acc[start:start + kw * O]
                            w0 = np.uint64(code0 + di * kw * O)
                            for o in range(kw * O):
                                row[o] += level * flat_codes[w0 + np.uint64(o)]
                            continue
                        for dj in range(kw):
                            q = q_of[j, dj]
                            if q < 0:
                                continue
                            start = (p * Wa + q) * O
                            row = acc[start:start + O]
                            w0 = np.uint64(code0 + (di * kw + dj) * O)
                            for o in range(O):
                                row[o] += level * flat_codes[w0 + np.uint64(o)]
        for o in range(O):
            a = scale[t if scale_per_step else 0, o]
            s = bias[t if bias_per_step else 0, o]
            dst = out[b, o]
            for p in range(Ho):
                for q in range(Wo):
                    # exact: |acc| < 2^24, inv_d a power of two
                    y = x.dtype.type(acc[(p * Wa + q + q_off) * O + o]) * inv_d
                    dst[p * Wo + q] = y * a + s


def _conv_levels_numba(x, codes, divisor, stride, padding, scale, bias, out=None):
    T, N, C, H, W = x.shape
    O, _, kh, kw = codes.shape
    (sh, sw), (ph, pw) = stride, padding
    Ho, Wo = (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1
    runs = sw == 1 and pw <= kw - 1  # one run per kernel row (the kernel's docstring)
    codes_t = codes.transpose(1, 2, 3, 0)  # output channels innermost
    codes_t = np.ascontiguousarray(codes_t[:, :, ::-1] if runs else codes_t, dtype=np.int32)
    s = np.ascontiguousarray(np.reshape(scale, (-1, O)), dtype=x.dtype)
    b = np.ascontiguousarray(np.reshape(bias, (-1, O)), dtype=x.dtype)
    y = np.empty((T * N, O, Ho * Wo), dtype=x.dtype) if out is None else out.reshape(T * N, O, Ho * Wo)
    if y.size:
        _conv_levels(x.reshape(T * N, C, H, W), codes_t, runs, x.dtype.type(divisor), x.dtype.type(1.0 / divisor),
                     sh, sw, ph, pw, Ho, Wo, N, s, b, y)
    return y.reshape(T, N, O, Ho, Wo) if out is None else out


_conv_levels_kernel = dispatch(_conv_levels_numba, _ref.conv_levels)

#: Largest ``fan_in * divisor * max_level`` for which :func:`conv_levels` is used: every partial sum of
#: integer products is then below 2^24, so a float32 convolution of the same levels is exact too and
#: both give the same bits (docs/performance.md, "Integer inference"); int32 would allow 2^31.
EXACT_FLOAT32 = 1 << 24


def levels_output_shape(x_shape: tuple, codes_shape: tuple, stride, padding) -> tuple:
    """The shape of :func:`conv_levels`' result: ``[T, N, O, Ho, Wo]`` for ``x: [T, N, C, H, W]``."""
    (sh, sw), (ph, pw), (kh, kw) = tuple(stride), tuple(padding), codes_shape[2:]
    return tuple(x_shape[:2]) + (codes_shape[0], (x_shape[3] + 2 * ph - kh) // sh + 1,
                                 (x_shape[4] + 2 * pw - kw) // sw + 1)


def conv_levels(x, codes, divisor, stride, padding, scale, bias, out=None):
    """Integer synapse of the frozen model: ternary/binary ``codes`` on integer spike levels, int32 sums.

    ``x: [T, N, C, H, W]`` float32/float64, C-contiguous, holding ``level / divisor`` (``divisor`` a
    power of two, the product of the average-pooling windows since the neuron: the levels are
    exact); ``codes: [O, C, kh, kw]`` integers in {-1, 0, +1}; ``stride``, ``padding`` pairs;
    ``scale``, ``bias``: ``[O]``, ``[1, O]`` or ``[T, O]``. Returns
    ``y = (acc / divisor) * scale + bias``, ``[T, N, O, Ho, Wo]`` of ``x``'s dtype, where ``acc`` is the
    exact integer convolution; the Numba kernel visits only non-zero inputs (event-driven). The
    caller keeps ``kh * kw * C * divisor * max_level`` below :data:`EXACT_FLOAT32`. ``out``: a C-contiguous
    ``[T, N, O, Ho, Wo]`` array of ``x``'s dtype to write ``y`` into (returned), else ``y`` is a new array.
    """
    if not isinstance(x, np.ndarray) or x.dtype not in (np.float32, np.float64) or x.ndim != 5:
        raise TypeError(f"x must be a float32/float64 [T, N, C, H, W] array, got {getattr(x, 'shape', x)!r}")
    if not x.flags.c_contiguous:
        raise ValueError("x must be C-contiguous")
    if codes.ndim != 4 or codes.shape[1] != x.shape[2] or codes.dtype.kind not in "iu":
        raise ValueError(f"codes must be integers [O, C={x.shape[2]}, kh, kw], got {codes.dtype} {codes.shape}")
    divisor = int(divisor)
    if divisor < 1 or divisor & (divisor - 1):
        raise ValueError(f"divisor must be a power of two, got {divisor}")
    if out is not None:
        shape = levels_output_shape(x.shape, codes.shape, stride, padding)
        if not isinstance(out, np.ndarray) or out.shape != shape or out.dtype != x.dtype or not out.flags.c_contiguous \
                or not out.flags.writeable:
            raise ValueError(f"out must be a writeable C-contiguous {x.dtype} array of shape {shape}, got "
                             f"{getattr(out, 'dtype', type(out).__name__)} {getattr(out, 'shape', '')}")
    return _conv_levels_kernel(x, codes, divisor, tuple(stride), tuple(padding), scale, bias, out=out)
