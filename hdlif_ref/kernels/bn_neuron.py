"""Batch norm, neuron step and spike quantizer in one pass, for steps that keep no graph.

A synapse's batch norm (training: batch statistics; evaluation: running statistics), then
one step of HD-LIF (SPEC E1, E2), Parallel HD-LIF (E8) or the LIF baseline (E7), then optionally
the ``n``-bit quantizer (E13), on ``x: [N, C, L]``: what ``BatchNorm2d`` -> neuron computes in three
kernels, two intermediate arrays and three graph ops, here one kernel per channel that
reads ``x`` (and ``u``) and writes the spikes and the new ``u``. Used where nothing needs
the intermediates: online steps not in ``S`` and evaluation (docs/performance.md,
"Graph-free steps"). :data:`bn_hdlif_graph_step` and :data:`bn_lif_graph_step` also write what a recorded
step's backward needs (HD-LIF: the unquantized spikes and the firing mask; LIF: the charges; "Graph steps").

Bit for bit the plain path: the statistics come from the function that
:func:`hdlif_ref.kernels.norm._bn_train_fwd` calls (:func:`.norm.channel_stats`), the normalized
current is ``float(x * scale + shift)`` computed in float64 as there, and the neuron and quantizer
do the per-element operations of :mod:`.hdlif`, :mod:`.parallel`, :mod:`.lif` and
:mod:`.spike_quantize` in the same order (``fastmath`` off: no contraction). The NumPy twin
(:func:`.reference.bn_neuron.bn_neuron_step`) is the plain path's twins called in a row.

The kernel also counts, per row, the non-finite normalized currents and the surpluses (HD-LIF's
``m - theta``, the parallel neuron's ``z - theta``) that overflowed to ``+inf``, so that the caller can
fall back to the plain path, whose checks name them (``check_finite`` on the neuron's input, the
quantizer's on its input), as the twin counts them.
"""
from __future__ import annotations

import math

import numba
import numpy as np

from ._backend import dispatch
from ._blocking import BLOCK
from ._config import njit, njit_parallel
from ._threads import run
from .norm import channel_stats
from .reference import bn_neuron as _ref

#: Neuron kinds of :func:`bn_neuron_step`.
HDLIF, PARALLEL, LIF = 0, 1, 2


@njit_parallel
def _bn_stats(x, weight, bias, eps, scale, shift, mean, var):
    """Training: the batch statistics as :func:`.norm._bn_train_fwd` computes them (the same function),
    folded into ``scale``, ``shift``. A launch of its own, so that its dynamic chunks are per channel."""
    for c in numba.prange(x.shape[1]):
        mu, v = channel_stats(x, c)
        mean[c] = mu
        var[c] = v
        scale[c] = weight[c] / math.sqrt(v + eps)
        shift[c] = bias[c] - mu * scale[c]


@njit(inline="always")
def _bad(z, s, big):
    """A normalized current ``z`` that is NaN or +-inf, or a surplus ``s`` (HD-LIF's ``m - theta``, the parallel
    neuron's ``z - theta``; 0 for LIF) that overflowed to ``+inf`` (``s`` is never NaN: it is taken only where
    ``m >= theta``), which the quantizer's input check would refuse."""
    return not ((abs(z) <= big) & (s <= big))


@njit
def _count_bad(x, k, c, a, b, u_prev, lam_c, theta_c, kind):
    """Row ``(k, c)``'s count of :func:`_bad` values, recomputed from the inputs (``u_prev`` is not
    ``u_out``): what :func:`_bn_neuron` stores when a row has any. The count is kept apart from the step's
    loop, which records only whether the row has one: counting there cost 30-50% of the kernel (an integer
    reduction beside the step's arithmetic in its vector body), and rows with one are the rare case the
    caller hands to the plain path."""
    zero = x.dtype.type(0)
    big = x.dtype.type(np.finfo(x.dtype).max)
    count = 0
    for t in range(x.shape[2]):
        z = x.dtype.type(x[k, c, t] * a + b)
        s = zero
        if kind == HDLIF:
            m = lam_c * u_prev[k, c, t] + z
            s = m - theta_c if m >= theta_c else zero
        elif kind == PARALLEL:
            s = z - theta_c if z >= theta_c else zero
        count += 1 if _bad(z, s, big) else 0
    return count


@njit(inline="always")
def _hdlif_row(x, k, c, a, b, u_prev, lam_c, theta_c, quantize, step, qmax, out, u_out, keep, s_kept, mask):
    """Row ``(k, c)`` of :func:`_bn_neuron`'s HD-LIF step; returns whether any value is :func:`_bad`."""
    zero = x.dtype.type(0)
    big = x.dtype.type(np.finfo(x.dtype).max)
    seen = False
    for t in range(x.shape[2]):
        z = x.dtype.type(x[k, c, t] * a + b)  # float64 arithmetic, stored in x's dtype, as the BN kernels
        m = lam_c * u_prev[k, c, t] + z  # E1
        fired = m >= theta_c  # E2, H(0) = 1
        s = m - theta_c if fired else zero
        seen |= _bad(z, s, big)
        u_out[k, c, t] = theta_c if fired else m
        if keep:  # a constant where the kernel calls this
            s_kept[k, c, t] = s
            mask[k, c, t] = fired
        if quantize:  # E13 (a loop invariant: LLVM unswitches it)
            s = step * min(max(np.rint(s / step), zero), qmax)
        out[k, c, t] = s
    return seen


@njit(inline="always")
def _lif_row(x, k, c, a, b, u_prev, lam_c, theta_c, soft, quantize, step, qmax, out, u_out, keep, m_kept):
    """Row ``(k, c)`` of :func:`_bn_neuron`'s LIF step (with ``keep``, also its charges ``m`` into ``m_kept``);
    returns whether any normalized current is :func:`_bad`."""
    zero = x.dtype.type(0)
    one = x.dtype.type(1)
    big = x.dtype.type(np.finfo(x.dtype).max)
    seen = False
    for t in range(x.shape[2]):
        z = x.dtype.type(x[k, c, t] * a + b)
        seen |= _bad(z, zero, big)
        m = lam_c * u_prev[k, c, t] + z  # E7
        fired = m >= theta_c  # H(0) = 1
        s = one if fired else zero
        if soft:  # u = m - theta s (a loop invariant, like quantize)
            u_out[k, c, t] = m - theta_c if fired else m
        else:  # u = m (1 - s)
            u_out[k, c, t] = zero if fired else m
        if keep:  # a constant where the kernel calls this
            m_kept[k, c, t] = m
        if quantize:
            s = step * min(max(np.rint(s / step), zero), qmax)
        out[k, c, t] = s
    return seen


@njit_parallel
def _bn_neuron(x, scale, shift, u_prev, lam, theta, kind, soft, quantize, step, qmax, out, u_out, bad,
               keep, kept, mask, per_item):
    # keep: also write what the backward of a recorded step needs: HD-LIF's unquantized spike s* and firing
    # mask H(m - theta) (bn_hdlif_graph_step), LIF's charge m (bn_lif_graph_step), into kept (and mask)
    n, channels, length = x.shape
    zero = x.dtype.type(0)
    one = x.dtype.type(1)
    big = x.dtype.type(np.finfo(x.dtype).max)
    # one iteration per sample and group of per_item channels (about BLOCK elements, _rows_per_item): more
    # and shorter work items than per channel, which keeps both threads busy on deep layers' small planes,
    # and longer ones than a row each (one iteration per 16-element row cost 1.7x the call, measured);
    # 3-D indexing, no row views (a view per row of 16 elements cost up to a third of the call)
    groups = (channels + per_item - 1) // per_item
    for item in numba.prange(n * groups):
        k, group = item // groups, item % groups
        for c in range(group * per_item, min(channels, (group + 1) * per_item)):
            r = k * channels + c
            a, b = scale[c], shift[c]
            lam_c, theta_c = lam[c], theta[c]
            seen = False
            if kind == HDLIF:
                # keep as a constant in each call: a flag tested inside the loop around the two stores made LLVM
                # write them as masked vector stores, which with the flag off still cost: on two threads 1.5-2.3x
                # the one-thread time, and 30x on untouched pages (docs/performance.md, "Masked stores")
                if keep:
                    seen = _hdlif_row(x, k, c, a, b, u_prev, lam_c, theta_c, quantize, step, qmax, out, u_out, True,
                                      kept, mask)
                else:
                    seen = _hdlif_row(x, k, c, a, b, u_prev, lam_c, theta_c, quantize, step, qmax, out, u_out, False,
                                      kept, mask)
            elif kind == LIF:
                if keep:
                    seen = _lif_row(x, k, c, a, b, u_prev, lam_c, theta_c, soft, quantize, step, qmax, out, u_out,
                                    True, kept)
                else:
                    seen = _lif_row(x, k, c, a, b, u_prev, lam_c, theta_c, soft, quantize, step, qmax, out, u_out,
                                    False, kept)
            else:
                for t in range(length):
                    z = x.dtype.type(x[k, c, t] * a + b)
                    s = z - theta_c if z >= theta_c else zero  # E8
                    seen |= _bad(z, s, big)  # z - theta can overflow with finite operands, as m - theta
                    if quantize:
                        s = step * min(max(np.rint(s / step), zero), qmax)
                    out[k, c, t] = s
            bad[r] = _count_bad(x, k, c, a, b, u_prev, lam_c, theta_c, kind) if seen else 0


#: The kernel's arguments it does not use (no state, nothing kept): one empty array per dtype, never written.
_UNUSED = {np.dtype(t): np.empty((0, 0, 0), dtype=t) for t in (np.float32, np.float64, np.bool_)}


def _unused(dtype) -> np.ndarray:
    array = _UNUSED.get(dtype)
    return array if array is not None else np.empty((0, 0, 0), dtype=dtype)


def _rows_per_item(length: int) -> int:
    """Channels of one sample per iteration of :func:`_bn_neuron`: about :data:`._blocking.BLOCK` elements."""
    return max(1, BLOCK // max(1, length))


def _launch(x, training, weight, bias, eps, mean_in, var_in, u_prev, lam, theta, kind, step, qmax, soft, keep):
    channels = x.shape[1]
    # the per-channel float64 arrays in one allocation: weight, bias, then (training) scale, shift, mean, var
    per_channel = np.zeros((6, channels))
    w, b, scale, shift, mean, var = per_channel
    w[...] = 1.0 if weight is None else weight
    if bias is not None:
        b[...] = bias
    if not training:  # the eval forward's folding (norm._batch_norm_eval_forward_numba)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):  # non-finite: counted by the kernel
            invstd = 1.0 / np.sqrt(var_in.astype(np.float64) + eps)
            scale = w * invstd
            shift = b - mean_in.astype(np.float64) * scale
    out = np.empty_like(x)
    stateful = kind != PARALLEL
    u_out = np.empty_like(x) if stateful else _unused(x.dtype)
    u_in = u_prev if stateful else u_out
    bad = np.zeros(x.shape[0] * channels, dtype=np.int64)
    kept = np.empty_like(x) if keep else _unused(x.dtype)
    mask = np.empty(x.shape, dtype=np.bool_) if keep and kind == HDLIF else _unused(np.dtype(np.bool_))
    quantize = qmax is not None
    dt = x.dtype.type
    if x.size:
        if training:
            run(_bn_stats, x.size, channels, x, w, b, float(eps), scale, shift, mean, var)
        per_item = _rows_per_item(x.shape[2])
        run(_bn_neuron, x.size, x.shape[0] * -(-channels // per_item), x, scale, shift, u_in, lam, theta, int(kind),
            bool(soft), quantize, dt(step if quantize else 1), dt(qmax if quantize else 0), out, u_out, bad,
            bool(keep), kept, mask, per_item)
    return out, (u_out if stateful else None), mean, var, int(bad.sum()), kept, mask


def _bn_neuron_numba(x, training, weight, bias, eps, mean_in, var_in, u_prev, lam, theta, kind, step, qmax,
                     soft=False):
    return _launch(x, training, weight, bias, eps, mean_in, var_in, u_prev, lam, theta, kind, step, qmax, soft,
                   False)[:5]


def _bn_hdlif_graph_numba(x, weight, bias, eps, u_prev, lam, theta, step, qmax):
    return _launch(x, True, weight, bias, eps, None, None, u_prev, lam, theta, HDLIF, step, qmax, False, True)


def _bn_lif_graph_numba(x, weight, bias, eps, u_prev, lam, theta, soft):
    return _launch(x, True, weight, bias, eps, None, None, u_prev, lam, theta, LIF, 1, None, soft, True)[:6]


#: ``(out, u_new, mean, var, nonfinite) = bn_neuron_step(x, training, weight, bias, eps, running_mean,
#: running_var, u_prev, lam, theta, kind, step, qmax, soft=False)``; see the twin for the argument list.
bn_neuron_step = dispatch(_bn_neuron_numba, _ref.bn_neuron_step)
#: ``(out, u_new, mean, var, nonfinite, s_star, mask) = bn_hdlif_graph_step(x, weight, bias, eps, u_prev, lam,
#: theta, step, qmax)``: a training batch norm and an HD-LIF step (+ quantizer) as :data:`bn_neuron_step`, and
#: also the unquantized spikes ``s*`` and the firing mask, for a recorded step's backward.
bn_hdlif_graph_step = dispatch(_bn_hdlif_graph_numba, _ref.bn_hdlif_graph_step)
#: ``(out, u_new, mean, var, nonfinite, m) = bn_lif_graph_step(x, weight, bias, eps, u_prev, lam, theta, soft)``:
#: a training batch norm and a LIF step (no quantizer) as :data:`bn_neuron_step`, and also the charges ``m`` (SPEC
#: E7), which a recorded step's backward reads.
bn_lif_graph_step = dispatch(_bn_lif_graph_numba, _ref.bn_lif_graph_step)
