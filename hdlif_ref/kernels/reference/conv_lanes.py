"""Plain-NumPy twin of :mod:`hdlif_ref.kernels.conv_lanes`: the lanes layout and its three stages.

Same geometry (:func:`conv_lanes.forward_geometry`, :func:`conv_lanes.input_grad_geometry`,
shapes only) and the same signatures; each stage is written as its formula with fancy
indexing and ``einsum``, so a test can compare the Numba kernels stage by stage:

* :func:`pack`: ``out[block, c, dpos[f], l] = x[block*L + l, c, f]`` (zeros elsewhere);
* :func:`tile_weights`: the weights gathered per tile of 4 output channels;
* :func:`correlate`: for every job, ``out[n, o, obase + u*orow + v*ostep] = bias[o] +
  sum_{c, k} wt[c, k, o] * xp[block, c, ibase + u*rin + v + offs[k], lane]``;
* :func:`wgrad`: ``out[o, u] = sum_{n, k} gp[o, posg[k]] * xp[c_u, posx[k] + off_u]``;
* :func:`live_blocks`: which blocks the kernels compute (the twins compute every block: skipping
  a silent one changes no bit, which the tests check on the kernels themselves);
* :func:`padding_adds_nothing`: when the kernel may run ``corr.trimmed_jobs`` (the twin runs every
  tap of ``corr.jobs``: leaving out the padded rows' taps changes no bit, tested on the kernel).
"""
from __future__ import annotations

import numpy as np

from .._simd import lanes_of


def pack(x, plane, lanes=None):
    """``[blocks, C * nvec * L]``, as :func:`conv_lanes.pack`."""
    lanes = lanes or lanes_of(x.dtype)
    n, c = x.shape[:2]
    blocks = -(-n // lanes)
    xs = np.zeros((blocks * lanes, c, x.shape[2] * x.shape[3]), dtype=x.dtype)
    xs[:n] = x.reshape(n, c, -1)
    out = np.zeros((blocks, c, plane.nvec, lanes), dtype=x.dtype)
    valid = plane.dpos >= 0
    out[:, :, plane.dpos[valid], :] = xs.reshape(blocks, lanes, c, -1)[..., valid].transpose(0, 2, 3, 1)
    return out.reshape(blocks, -1)


def tile_weights(weight, corr, transpose, out=None):
    """``wt[t, c, k, oo]`` = ``weight[4t + oo, c, i_k, j_k]`` (``transpose``: ``weight[c, 4t + oo, i_k, j_k]``),
    zero past the last output channel, as :func:`conv_lanes.tile_weights`."""
    w = weight.transpose(1, 0, 2, 3) if transpose else weight
    rows, cols = w.shape[:2]
    ii = np.array([i for i, _ in corr.taps], dtype=np.int64)
    jj = np.array([j for _, j in corr.taps], dtype=np.int64)
    tiles = -(-rows // 4)
    full = np.zeros((tiles * 4, cols, len(ii)), dtype=weight.dtype)
    full[:rows] = w[:, :, ii, jj]
    return np.ascontiguousarray(full.reshape(tiles, 4, cols, len(ii)).transpose(0, 2, 3, 1))


def _engine_weights(wt):
    """``[tiles, C, taps, 4]`` -> ``[C, taps, tiles*4]``."""
    tiles, c, taps, width = wt.shape
    return wt.transpose(1, 2, 0, 3).reshape(c, taps, tiles * width)


def correlate(xp, n, channels, corr, wt, bias, out):
    """``out: [N, C_o, Ho, Wo]`` from the packed input, as :func:`conv_lanes.correlate`."""
    lanes = lanes_of(xp.dtype)
    blocks = xp.shape[0]
    xv = xp.reshape(blocks, channels, corr.plane.nvec, lanes)
    w = _engine_weights(wt)
    c_o = out.shape[1]
    hw_out = out.shape[2] * out.shape[3]
    acc = np.zeros((blocks, w.shape[2], hw_out, lanes), dtype=np.result_type(xp, wt))
    for t0, nt, ibase, rin, obase, orow, ostep, nu, nv in corr.jobs:
        u, v = np.meshgrid(np.arange(nu), np.arange(nv), indexing="ij")
        iv = (ibase + u * rin + v).ravel()
        ov = (obase + u * orow + v * ostep).ravel()
        for k in range(t0, t0 + nt):
            acc[:, :, ov, :] += np.einsum("bcpl,co->bopl", xv[:, :, iv + corr.offs[k], :], w[:, k, :])
    res = acc[:, :c_o].transpose(0, 3, 1, 2).reshape(blocks * lanes, c_o, hw_out)[:n]
    out[...] = (res + bias[None, :, None]).reshape(out.shape)


def wgrad(xp, xnvec, gp, gnvec, n, posx, posg, pairs, out_channels, out):
    """``out[o, u]`` for ``o < out_channels`` and every pair ``u = (c, tap offset)``, as
    :func:`conv_lanes._wgrad` but as the ``[O, U]`` matrix (rows past ``out_channels`` left alone)."""
    lanes = lanes_of(xp.dtype)
    blocks = xp.shape[0]
    xv = xp.reshape(blocks, -1, xnvec, lanes)
    g = gp.reshape(blocks, -1, gnvec, lanes)[:, :out_channels, posg, :]  # [blocks, C_out, positions, lanes]
    for u, (c, off) in enumerate(pairs):
        out[:out_channels, u] = np.einsum("bopl,bpl->o", g, xv[:, c, posx + off, :])


def padding_adds_nothing(wt, bias):
    """As :func:`conv_lanes.padding_adds_nothing`: every weight finite and no bias of ``-0``."""
    return bool(np.isfinite(wt).all()) and not bool(np.any((bias == 0) & np.signbit(bias)))


def live_blocks(xp, partner):
    """``uint8 [blocks]``, as :func:`conv_lanes.live_blocks` (with its skip on): 0 where the block's
    values are all zero and ``partner`` is finite, else 1."""
    silent = ~np.any(xp != 0, axis=1) & bool(np.isfinite(partner).all())
    return (~silent).astype(np.uint8)
