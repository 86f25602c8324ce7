"""Direct 2-D convolution (no im2col) for stride 1 and kernels 3 columns wide: the small-plane path.

    out[n, o, p, q] = bias[o] + sum_{c, i, j} weight[o, c, i, j] * xpad[n, c, p + i, q + j]

(the same formula as :mod:`.conv`, ``groups = 1``, ``stride = 1``, ``kw = 3``, any ``kh``,
``ph < kh``, ``pw < 3``). For 3x3 convolutions on 8x8 to 32x32 planes with 1-64
channels, im2col + GEMM spends a third of its time copying ``col`` (nine shifted
copies of the input) and the GEMM, with a small ``C_out``, packs ``col`` once more.
Here each input value is copied once, and the arithmetic runs on the copy
(docs/performance.md, "Direct kernel"):

* **Layout** (``_pack_block``): a block of ``nb`` images, per channel one flat row in
  which image rows are ``wp = W + pw`` apart (``pw`` zeros between two rows are the
  right padding of one and the left padding of the next) and images ``S = (H + ph) * wp``
  apart (``ph`` zero rows between two images), starting after ``lead = ph * wp + pw``
  zeros. Output ``(b, p, q)`` sits at ``t = b*S + p*wp + q`` and reads its input tap
  ``(i, j)`` at ``t + i*wp + j``: every tap is a constant shift, for the whole block.
  The positions ``t`` with ``q >= Wo`` (or between images) are computed and dropped.
* **Arithmetic** (``_accumulate_block``): four output channels at a time; per input
  channel and kernel row, one loop over ``t`` adds the row's three taps to each of the
  four output rows, ``acc[o, t] = ((acc[o, t] + w0 u_t) + w1 u_{t+1}) + w2 u_{t+2}``:
  seven loads, four stores and 24 arithmetic operations per ``t``, which the loop
  vectorizer turns into 8-wide AVX without reordering any sum (``fastmath`` stays off).
* **Order of the sum** for every output: the bias, then channels ``c``, kernel rows
  ``i`` and columns ``j`` in increasing order; it depends on nothing else (not on the
  block, the thread or the thread count).
"""
from __future__ import annotations

import numba

from ._config import njit, njit_parallel

#: A block of images side by side gives a ``t`` loop of about this many positions (longer
#: loops amortize the per-row setup; 300-400 fits one block of four accumulator rows in L1).
DIRECT_COLUMNS = 320


def block_geometry(height, width, ph, pw, nb):
    """``(wp, S, lead, buffer length)`` of a block of ``nb`` padded images (see the module doc)."""
    wp = width + pw
    stride = (height + ph) * wp
    lead = ph * wp + pw
    # the last outputs of a block (dropped ones included) read a little past its last image
    return wp, stride, lead, lead + nb * stride + 3 * wp + 3


@njit
def _pack_block(x, n0, m, height, width, wp, stride, lead, xb):
    """xb[c, lead + b*S + r*wp + s] = x[n0 + b, c, r*W + s]; the padding positions are not written.

    ``x: [N, C, H*W]``, ``xb: [C, L]``, zeroed once by the caller: padding positions are never
    written, so they stay zero. (Positions of images ``m..nb-1`` may hold a previous block's
    images; only dropped outputs read them.)
    """
    for c in range(x.shape[1]):
        dst = xb[c]
        for b in range(m):
            src = x[n0 + b, c]
            for r in range(height):
                at = lead + b * stride + r * wp
                dst[at:at + width] = src[r * width:(r + 1) * width]


@njit
def _accumulate_block(xb, weight, bias, tend, wp, acc):
    """acc[o, t] = bias[o] + sum_{c, i, j} weight[o, c, i, j] * xb[c, t + i*wp + j] for t < tend.

    ``weight: [C_out, C_in, kh, 3]``, ``acc: [C_out, >= tend]``. Four output channels share each
    load of ``xb``; the ``C_out % 4`` last ones run one at a time (same order of the sum).
    """
    c_out, c_in, kh = weight.shape[0], weight.shape[1], weight.shape[2]
    o4 = c_out - c_out % 4
    for o0 in range(0, o4, 4):
        a0, a1, a2, a3 = acc[o0, :tend], acc[o0 + 1, :tend], acc[o0 + 2, :tend], acc[o0 + 3, :tend]
        a0[:] = bias[o0]
        a1[:] = bias[o0 + 1]
        a2[:] = bias[o0 + 2]
        a3[:] = bias[o0 + 3]
        for c in range(c_in):
            for i in range(kh):
                u = xb[c, i * wp:i * wp + tend]
                v = xb[c, i * wp + 1:i * wp + 1 + tend]
                z = xb[c, i * wp + 2:i * wp + 2 + tend]
                w0, w1, w2, w3 = weight[o0, c, i], weight[o0 + 1, c, i], weight[o0 + 2, c, i], weight[o0 + 3, c, i]
                w00, w01, w02 = w0[0], w0[1], w0[2]
                w10, w11, w12 = w1[0], w1[1], w1[2]
                w20, w21, w22 = w2[0], w2[1], w2[2]
                w30, w31, w32 = w3[0], w3[1], w3[2]
                for t in range(tend):
                    ut, vt, zt = u[t], v[t], z[t]
                    a0[t] = a0[t] + w00 * ut + w01 * vt + w02 * zt
                    a1[t] = a1[t] + w10 * ut + w11 * vt + w12 * zt
                    a2[t] = a2[t] + w20 * ut + w21 * vt + w22 * zt
                    a3[t] = a3[t] + w30 * ut + w31 * vt + w32 * zt
    for o in range(o4, c_out):
        a0 = acc[o, :tend]
        a0[:] = bias[o]
        for c in range(c_in):
            for i in range(kh):
                u = xb[c, i * wp:i * wp + tend]
                v = xb[c, i * wp + 1:i * wp + 1 + tend]
                z = xb[c, i * wp + 2:i * wp + 2 + tend]
                w00, w01, w02 = weight[o, c, i, 0], weight[o, c, i, 1], weight[o, c, i, 2]
                for t in range(tend):
                    a0[t] = a0[t] + w00 * u[t] + w01 * v[t] + w02 * z[t]


@njit
def _unpack_block(acc, n0, m, ho, wo, wp, stride, out):
    """out[n0 + b, o, p*Wo + q] = acc[o, b*S + p*wp + q]: keep the real outputs, drop the rest."""
    for b in range(m):
        for o in range(out.shape[1]):
            dst = out[n0 + b, o]
            src = acc[o]
            for p in range(ho):
                at = b * stride + p * wp
                dst[p * wo:(p + 1) * wo] = src[at:at + wo]


@njit_parallel
def _conv_direct_fwd(x, height, width, weight, bias, ph, pw, ho, wo, nb, out, xbs, accs):
    """out = conv(x, weight) + bias, stride 1, ``kw = 3``, one block of ``nb`` images per iteration.

    ``x: [N, C_in, H*W]``, ``weight: [C_out, C_in, kh, 3]``, ``out: [N, C_out, Ho*Wo]``; per thread
    ``xbs[t]: [C_in, L]`` (zeroed) and ``accs[t]: [C_out, nb*S]`` (:func:`block_geometry`).
    """
    n_images = x.shape[0]
    wp, stride, lead = width + pw, (height + ph) * (width + pw), ph * (width + pw) + pw
    for block in numba.prange((n_images + nb - 1) // nb):
        t = numba.get_thread_id()
        n0 = block * nb
        m = min(nb, n_images - n0)
        _pack_block(x, n0, m, height, width, wp, stride, lead, xbs[t])
        # the last real output of the block is (m - 1, ho - 1, wo - 1)
        tend = (m - 1) * stride + (ho - 1) * wp + wo
        _accumulate_block(xbs[t], weight, bias, tend, wp, accs[t])
        _unpack_block(accs[t], n0, m, ho, wo, wp, stride, out)
