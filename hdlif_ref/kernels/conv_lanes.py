"""Register-blocked direct convolution with one image per vector lane (the "lanes" path).

    out[n, o, p, q] = bias[o] + sum_{c, i, j} weight[o, c, i, j] * xpad[n, c, p*sh + i, q*sw + j]

(``groups = 1``, any kernel, stride and padding; the formula of :mod:`.conv`). Its
input gradient and weight gradient run on the same machinery. The plain-NumPy twin of
every stage is :mod:`hdlif_ref.kernels.reference.conv_lanes`; docs/performance.md,
"Register-blocked kernels", has the measurements behind the choices below.

**Layout.** ``L`` images (``L = 16`` float32, ``8`` float64: one 64-byte vector,
:mod:`._simd`) form a block. A block's channel is stored as a grid of vectors, lane
``l`` holding image ``n0 + l``: every position of a zero-padded plane is one vector,
so a tap of the kernel is a whole-vector shift and every load is a full vector of real
work (no position is wasted at the borders, whatever the plane size: 4x4 planes cost
what 32x32 planes cost per output). Stride ``(sh, sw)`` splits the padded plane into
its ``sh * sw`` phases (rows ``sh*r + a``, columns ``sw*s + b``): tap ``(i, j)`` reads
phase ``(i % sh, j % sw)`` at the shift ``(i // sh, j // sw)``, so a stride-2
convolution is a stride-1 correlation over four phase planes. ``_pack`` moves ``L``
images from NCHW into this layout and ``_unpack_tile`` back (transposing ``L x L`` blocks
in registers), adding the bias.

**Arithmetic.** A register tile is 4 output channels x 4 consecutive positions: 16
vector accumulators that stay in registers while the tile runs over every input
channel and tap (per tap: 4 vector loads, 4 broadcast weights, 16 fused
multiply-adds). Every output is the sum over ``c`` ascending, then the taps in
row-major order, one ``fmuladd`` each, then the bias: the order depends on nothing
but the formula (not the block, the tile or the thread).

**Jobs.** The correlation engine (``_correlate``) runs "jobs": rows ``u < nu`` of
positions ``v < nv``, input vector ``ibase + u*rin + v`` plus the job's tap offsets,
output vector ``obase + u*orow + v*ostep``. The forward is one job. The input
gradient is the correlation of the packed output gradient with the flipped, transposed
kernel: one job per phase ``(a, b)`` of ``dx`` (the taps ``i = a + sh*m``,
``j = b + sw*l`` at the offset ``-(m, l)``), written interleaved (``ostep = sw``,
``orow = sh * W``); stride 1 is the single phase.

**Weight gradient** (``_wgrad``): ``dW[o, c, k] = sum_{n, p, q} gy[n, o, p, q] *
x_k[n, c, p, q]`` with 4 output channels x 4 ``(c, k)`` pairs per register tile; each
accumulator holds ``L`` partial sums (lane ``l``: image ``n0 + l`` of every block, in
order), summed across lanes in a fixed tree at the end. Each tile owns its 16 weights:
no partial sums are shared between threads, so the result does not depend on the
thread count.

**Silent blocks.** Spiking layers are often silent: in the spiking ResNet of the benchmark (W3)
at its initialization every layer after the first stage receives no spike at all. A block
whose packed values are all zero (``+0`` or ``-0``) is not computed when what its values
multiply is finite (the weights in the forward and ``dx``, the output gradient in ``dW``):
each product is then ``+-0``, and adding ``+-0`` to an accumulator that is exactly ``+0`` leaves
it ``+0``, so skipping the block gives the same bits as computing it. The forward and ``dx``
accumulators start at ``+0`` for every block. The ``dW`` accumulators run over the blocks in order
and, once a live block has been added, may hold ``-0`` (a product that underflows under the fused
multiply-add, which a later ``+0`` would turn into ``+0``): ``dW`` skips only the silent blocks
before the first live one (all of them in a silent layer). :func:`live_blocks` marks the blocks
(one pass that stops at a block's first non-zero value); a NaN or an infinity anywhere in the
partner turns the skip off,
so that ``0 * inf`` still gives the NaN the formula gives. ``SKIP_SILENT_BLOCKS = False`` turns
it off (tests and A/B measurements).

**Padded rows.** In the top and bottom rows of a padded convolution some kernel rows read only
padding: on a 4x4 plane with a 3x3 kernel and padding 1, 8 of the 48 (position, kernel row)
pairs. The engine's jobs run one range of taps per output row, so
:attr:`Correlation.trimmed_jobs` cuts from each row's range the taps at either end that read only
padding along the whole row (taps are listed kernel row by kernel row: the kernel rows above and
below the image; also end columns of a kernel wider than the image). Each left-out product is ``w * (+0) = +-0``.
The accumulators start at ``+0``, so adding ``+-0`` to one changes nothing unless it holds
``-0`` (an underflowed product), and then only the sign of that zero, which the bias then
removes: ``(+-0) + b`` is the same for every bias but ``-0``. So the trimmed jobs give the same
bits when every weight is finite (``inf * 0`` is NaN) and no bias is ``-0``
(:func:`padding_adds_nothing`); otherwise, and with ``TRIM_PADDED_ROWS = False``, every tap
runs. It saves a sixth of the multiply-adds on 4x4 planes and a twelfth on 8x8 ones (forward
and ``dx``; the weight gradient's tiles mix kernel rows and compute every position).

Threads: the packing runs over (block, group of channels) items, the correlation over
(block, output-channel tile) items and the weight gradient over (output tile, group of
pair tiles) items, each item writing its own slice; the caller hands them out one at a
time (dynamic schedule). Temporaries are per-thread scratch buffers (:mod:`._workspace`).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numba
import numpy as np

from ._config import njit, njit_parallel
from ._simd import lanes_of, vfma, vload, vsplat, vstore, vstore_lanesums, vtranspose_pack, vtranspose_unpack
from ._threads import current_threads
from ._workspace import scratch
from .finite import _count as _count_nonfinite  # the one pass behind count_nonfinite, callable from a kernel
from .finite import count_nonfinite

#: Output channels and positions per register tile (16 vector accumulators).
TILE_O = 4
TILE_P = 4
#: (c, k) pairs per weight-gradient tile.
TILE_U = 4
#: Work per parallel item, so that handing items out one at a time (the dynamic schedule that
#: lets a thread slowed by another process do fewer) costs little: about this many vector
#: fused multiply-adds per weight-gradient item, this many elements per packing item.
ITEM_FMAS = 1 << 15
ITEM_ELEMENTS = 1 << 15
#: False: every block is computed, silent or not (module doc, "Silent blocks").
SKIP_SILENT_BLOCKS = True
#: False: every job runs all its taps, also those that read only padding (module doc, "Padded rows").
TRIM_PADDED_ROWS = True


# ---------------------------------------------------------------- geometry (shapes only)
@dataclass(frozen=True)
class Plane:
    """Where the elements of an ``H x W`` NCHW plane go in a channel's region of the lane layout.

    ``dpos[y*W + x]``: the vector index of input element ``(y, x)``, or -1 when no tap reads
    it; ``pad``: the vector indices that hold padding (zeros); ``nvec``: vectors per channel.
    """

    dpos: np.ndarray
    pad: np.ndarray
    nvec: int
    #: ``used[f // L]``: some element of the ``L``-element chunk at ``f`` is read (per dtype's ``L``)
    used16: np.ndarray
    used8: np.ndarray

    def used(self, lanes: int) -> np.ndarray:
        return self.used16 if lanes == 16 else self.used8


@functools.lru_cache(maxsize=256)
def plane_layout(height, width, sh, sw, top, left, hq, wq, phases: tuple) -> Plane:
    """Phase ``(a, b)`` (its index in ``phases``) of the plane zero-padded by ``top``, ``left``
    holds, at vector ``index * hq * wq + r * wq + s``, input element ``(sh*r + a - top, sw*s + b - left)``."""
    table = np.full((sh, sw), -1, dtype=np.int64)
    for k, (a, b) in enumerate(phases):
        table[a, b] = k
    y = np.arange(height)[:, None] + top
    x = np.arange(width)[None, :] + left
    phase = table[y % sh, x % sw]
    r, s = y // sh, x // sw
    valid = (phase >= 0) & (r < hq) & (s < wq)
    dpos = np.where(valid, phase * hq * wq + r * wq + s, -1).ravel().astype(np.int64)
    nvec = len(phases) * hq * wq
    pad = np.setdiff1d(np.arange(nvec, dtype=np.int64), dpos[dpos >= 0]).astype(np.int64)
    chunks = {}
    for lanes in (16, 8):
        k = -(-dpos.size // lanes)
        padded = np.full(k * lanes, -1, dtype=np.int64)
        padded[:dpos.size] = dpos
        chunks[lanes] = (padded.reshape(k, lanes) >= 0).any(axis=1).astype(np.uint8)
    return Plane(dpos, pad, nvec, chunks[16], chunks[8])


@dataclass(frozen=True)
class Correlation:
    """One run of the engine: the input plane's layout, tap offsets (vectors), jobs, and the
    ``(input channel, tap)`` weight index of every tap as ``(i, j)`` pairs of the kernel."""

    plane: Plane
    offs: np.ndarray   # [taps]
    jobs: np.ndarray   # [jobs, 9]: tap0, ntaps, ibase, rin, obase, orow, ostep, nu, nv
    taps: list         # [(i, j)] per tap, in the order of offs

    @functools.cached_property
    def trimmed_jobs(self) -> np.ndarray:
        """The jobs with each row's taps cut to the range that reads real input (module doc, "Padded
        rows"): a tap whose input vectors along a whole row of the job are padding adds ``w * 0`` to
        every output of that row. Taps are listed kernel row by kernel row, so the taps that read a
        real row of the input are one range; consecutive rows with the same range stay one job, and
        a row with no such tap gets an empty range (its outputs are the accumulators' ``+0``)."""
        real = np.zeros(self.plane.nvec, dtype=bool)
        real[self.plane.dpos[self.plane.dpos >= 0]] = True
        trimmed = []
        for t0, nt, ibase, rin, obase, orow, ostep, nu, nv in self.jobs.tolist():
            previous = None
            for u in range(nu):
                # tap k reads the input vectors start_k .. start_k + nv - 1 of the channel's plane along row u
                reads = [bool(real[start:start + nv].any()) for start in ibase + u * rin + self.offs[t0:t0 + nt]]
                first = reads.index(True) if True in reads else 0
                count = nt - first - reads[::-1].index(True) if True in reads else 0
                if previous is not None and previous[:2] == [t0 + first, count]:
                    previous[7] += 1
                    continue
                previous = [t0 + first, count, ibase + u * rin, rin, obase + u * orow, orow, ostep, 1, nv]
                trimmed.append(previous)
        return np.array(trimmed, dtype=np.int64).reshape(-1, 9)

    @functools.cached_property
    def trims(self) -> bool:
        """Some row of some job has taps that read padding only (:attr:`trimmed_jobs` does less)."""
        return not np.array_equal(self.trimmed_jobs, self.jobs)

    @functools.cached_property
    def tap_rows(self) -> np.ndarray:
        return np.array([i for i, _ in self.taps], dtype=np.int64)

    @functools.cached_property
    def tap_cols(self) -> np.ndarray:
        return np.array([j for _, j in self.taps], dtype=np.int64)


@functools.lru_cache(maxsize=256)
def forward_geometry(height, width, kh, kw, stride, padding) -> tuple[Correlation, int, int]:
    """The forward (and the layout of ``x`` for the weight gradient); returns ``(corr, hq, wq)``.

    Cached per shape (as the other geometry functions): the arrays are shared, never written."""
    (sh, sw), (ph, pw) = stride, padding
    ho, wo = (height + 2 * ph - kh) // sh + 1, (width + 2 * pw - kw) // sw + 1
    hq, wq = ho + (kh - 1) // sh, wo + (kw - 1) // sw
    phases = sorted({(i % sh, j % sw) for i in range(kh) for j in range(kw)})
    index = {p: k for k, p in enumerate(phases)}
    plane = plane_layout(height, width, sh, sw, ph, pw, hq, wq, tuple(phases))
    taps = [(i, j) for i in range(kh) for j in range(kw)]
    offs = np.array([index[(i % sh, j % sw)] * hq * wq + (i // sh) * wq + j // sw for i, j in taps], dtype=np.int64)
    jobs = np.array([[0, len(taps), 0, wq, 0, wo, 1, ho, wo]], dtype=np.int64)
    return Correlation(plane, offs, jobs, taps), hq, wq


@functools.lru_cache(maxsize=256)
def input_grad_geometry(height, width, kh, kw, stride, padding, ho, wo) -> tuple[Correlation, int, int, int]:
    """``dx`` as correlations of the packed ``gy`` (one job per phase of ``dx``); returns
    ``(corr, mt, lt, gw)``: ``gy[p, q]`` sits at vector ``(p + mt) * gw + q + lt`` of its plane."""
    (sh, sw), (ph, pw) = stride, padding
    phase_rows = []
    for a in range(sh):
        u_lo, u_hi = -((a - ph) // sh), (height - 1 + ph - a) // sh
        phase_rows.append((a, u_lo, u_hi, len(range(a, kh, sh))))
    phase_cols = []
    for b in range(sw):
        v_lo, v_hi = -((b - pw) // sw), (width - 1 + pw - b) // sw
        phase_cols.append((b, v_lo, v_hi, len(range(b, kw, sw))))
    # rows of gy any phase reads: p = u - m, m < (taps of the phase)
    p_min = min([u_lo - max(m - 1, 0) for _, u_lo, u_hi, m in phase_rows if u_hi >= u_lo] + [0])
    p_max = max([u_hi for _, u_lo, u_hi, _ in phase_rows if u_hi >= u_lo] + [ho - 1])
    q_min = min([v_lo - max(m - 1, 0) for _, v_lo, v_hi, m in phase_cols if v_hi >= v_lo] + [0])
    q_max = max([v_hi for _, v_lo, v_hi, _ in phase_cols if v_hi >= v_lo] + [wo - 1])
    mt, lt = -p_min, -q_min
    gh, gw = mt + p_max + 1, lt + q_max + 1
    plane = plane_layout(ho, wo, 1, 1, mt, lt, gh, gw, ((0, 0),))
    offs, jobs, taps = [], [], []
    for a, u_lo, u_hi, _ in phase_rows:
        for b, v_lo, v_hi, _ in phase_cols:
            if u_hi < u_lo or v_hi < v_lo:
                continue
            first = len(taps)
            for m, i in enumerate(range(a, kh, sh)):
                for l, j in enumerate(range(b, kw, sw)):
                    taps.append((i, j))
                    offs.append(-(m * gw + l))
            y0, x0 = sh * u_lo + a - ph, sw * v_lo + b - pw
            jobs.append([first, len(taps) - first, (u_lo + mt) * gw + v_lo + lt, gw, y0 * width + x0, sh * width,
                         sw, u_hi - u_lo + 1, v_hi - v_lo + 1])
    return Correlation(plane, np.array(offs, dtype=np.int64), np.array(jobs, dtype=np.int64).reshape(-1, 9),
                       taps), mt, lt, gw


def tile_weights(weight, corr: Correlation, transpose: bool, out=None) -> np.ndarray:
    """``wt[t, c, k, oo]``: the weight of engine output channel ``4t + oo`` (zero past the last),
    input channel ``c`` and tap ``k`` of ``corr``. ``weight: [C_out, C_in, kh, kw]``; ``transpose``: the
    input gradient's engine, whose outputs are ``C_in`` and inputs ``C_out``."""
    rows, cols = weight.shape[:2]
    if transpose:
        rows, cols = cols, rows
    shape = (-(-rows // TILE_O), cols, len(corr.taps), TILE_O)
    out = np.empty(shape, dtype=weight.dtype) if out is None else out
    _tile_weights(weight, corr.tap_rows, corr.tap_cols, transpose, out)
    return out


@njit
def _tile_weights(weight, ii, jj, transpose, out):
    """Row by row of the engine's channels: 4 rows of ``out`` read the weight's flat taps ``i*kw + j`` (no
    4-D index and no branch per value: 2-3.6x faster than a loop over ``out``'s four axes, 85 against 210-310 us
    for 128 x 128 3x3 weights)."""
    tiles, cols, taps, width = out.shape
    rows = weight.shape[1] if transpose else weight.shape[0]
    kw = weight.shape[3]
    w3 = np.ascontiguousarray(weight).reshape(weight.shape[0], weight.shape[1], weight.shape[2] * kw)
    flat_taps = np.empty(taps, dtype=np.intp)
    for k in range(taps):
        flat_taps[k] = ii[k] * kw + jj[k]
    for t in range(tiles):
        filled = min(width, rows - t * width)  # rows past the last are zero
        for c in range(cols):
            dst = out[t, c]
            for oo in range(filled):
                r = t * width + oo
                src = w3[c, r] if transpose else w3[r, c]
                for k in range(taps):
                    dst[k, oo] = src[flat_taps[k]]
            for oo in range(filled, width):
                for k in range(taps):
                    dst[k, oo] = 0.0


# ---------------------------------------------------------------- packing
@njit
def _pack_channel(x, channels, hw, n0, m, c, dpos, pad, used, dst):
    """One block's channel ``c`` into ``dst`` (``nvec * L`` elements): ``x`` is the flat NCHW input.
    Chunks of ``L`` elements that no tap reads (``used``: e.g. odd rows of a 1x1 stride-2 kernel)
    are skipped."""
    lanes = 64 // x.itemsize
    zero = vsplat(x.dtype.type(0))
    for k in range(pad.shape[0]):
        vstore(dst, pad[k] * lanes, zero)
    base = (n0 * channels + c) * hw
    step = channels * hw
    f = 0
    if m == lanes:
        while f + lanes <= hw:
            if used[f // lanes]:
                vtranspose_pack(x, base + f, step, dst, dpos, f)
            f += lanes
    for f in range(f, hw):
        d = dpos[f]
        if d >= 0:
            for l in range(m):
                dst[d * lanes + l] = x[base + l * step + f]
            for l in range(m, lanes):
                dst[d * lanes + l] = 0.0


@njit_parallel
def _pack(x, n, channels, hw, dpos, pad, used, nvec, per_item, out):
    """``out[block, c*nvec*L : (c+1)*nvec*L]`` = the lane layout of images ``block*L ...`` (one block
    and ``per_item`` channels per iteration). ``x``: flat ``[N*C*H*W]``; ``out: [blocks, C*nvec*L]``."""
    lanes = 64 // x.itemsize
    blocks = (n + lanes - 1) // lanes
    width = nvec * lanes
    groups = (channels + per_item - 1) // per_item
    for item in numba.prange(blocks * groups):
        block, group = item // groups, item % groups
        n0 = block * lanes
        for c in range(group * per_item, min(channels, (group + 1) * per_item)):
            _pack_channel(x, channels, hw, n0, min(lanes, n - n0), c, dpos, pad, used,
                          out[block, c * width:(c + 1) * width])


@njit
def _unpack_tile(acc, bias, o0, count, channels, hw, n0, m, out):
    """``out[n0 + l, o0 + oo, f] = acc[oo, f*L + l] + bias[o0 + oo]`` for ``oo < count``, ``l < m``."""
    lanes = 64 // out.itemsize
    step = channels * hw
    for oo in range(count):
        a = acc[oo]
        shift = bias[o0 + oo]
        base = (n0 * channels + o0 + oo) * hw
        f = 0
        if m == lanes:
            while f + lanes <= hw:
                vtranspose_unpack(a, f * lanes, shift, out, base + f, step)
                f += lanes
        for l in range(m):
            for g in range(f, hw):
                out[base + l * step + g] = a[g * lanes + l] + shift


# ---------------------------------------------------------------- the correlation engine
@njit
def _tile_4x4(xb, ib, cpitch, channels, offs, t0, nt, wt, acc, ob, ostep):
    """acc[oo, ob + v*ostep + lane] = sum_{c, k} wt[c, t0 + k, oo] * xb[c*cpitch + ib + v*L + offs[t0 + k]*L + lane]
    for 4 output channels ``oo`` and 4 positions ``v`` (16 accumulators in registers)."""
    lanes = 64 // xb.itemsize
    z = vsplat(xb.dtype.type(0))
    a00 = a01 = a02 = a03 = a10 = a11 = a12 = a13 = z
    a20 = a21 = a22 = a23 = a30 = a31 = a32 = a33 = z
    for c in range(channels):
        xc = c * cpitch + ib
        wc = wt[c]
        for k in range(t0, t0 + nt):
            b = xc + offs[k] * lanes
            x0 = vload(xb, b)
            x1 = vload(xb, b + lanes)
            x2 = vload(xb, b + 2 * lanes)
            x3 = vload(xb, b + 3 * lanes)
            w0 = vsplat(wc[k, 0])
            a00 = vfma(w0, x0, a00)
            a01 = vfma(w0, x1, a01)
            a02 = vfma(w0, x2, a02)
            a03 = vfma(w0, x3, a03)
            w1 = vsplat(wc[k, 1])
            a10 = vfma(w1, x0, a10)
            a11 = vfma(w1, x1, a11)
            a12 = vfma(w1, x2, a12)
            a13 = vfma(w1, x3, a13)
            w2 = vsplat(wc[k, 2])
            a20 = vfma(w2, x0, a20)
            a21 = vfma(w2, x1, a21)
            a22 = vfma(w2, x2, a22)
            a23 = vfma(w2, x3, a23)
            w3 = vsplat(wc[k, 3])
            a30 = vfma(w3, x0, a30)
            a31 = vfma(w3, x1, a31)
            a32 = vfma(w3, x2, a32)
            a33 = vfma(w3, x3, a33)
    s = ostep * lanes
    r = acc[0]
    vstore(r, ob, a00)
    vstore(r, ob + s, a01)
    vstore(r, ob + 2 * s, a02)
    vstore(r, ob + 3 * s, a03)
    r = acc[1]
    vstore(r, ob, a10)
    vstore(r, ob + s, a11)
    vstore(r, ob + 2 * s, a12)
    vstore(r, ob + 3 * s, a13)
    r = acc[2]
    vstore(r, ob, a20)
    vstore(r, ob + s, a21)
    vstore(r, ob + 2 * s, a22)
    vstore(r, ob + 3 * s, a23)
    r = acc[3]
    vstore(r, ob, a30)
    vstore(r, ob + s, a31)
    vstore(r, ob + 2 * s, a32)
    vstore(r, ob + 3 * s, a33)


@njit
def _tile_4x1(xb, ib, cpitch, channels, offs, t0, nt, wt, acc, ob):
    """:func:`_tile_4x4` for one position (the end of a row)."""
    lanes = 64 // xb.itemsize
    z = vsplat(xb.dtype.type(0))
    a0 = a1 = a2 = a3 = z
    for c in range(channels):
        xc = c * cpitch + ib
        wc = wt[c]
        for k in range(t0, t0 + nt):
            x0 = vload(xb, xc + offs[k] * lanes)
            a0 = vfma(vsplat(wc[k, 0]), x0, a0)
            a1 = vfma(vsplat(wc[k, 1]), x0, a1)
            a2 = vfma(vsplat(wc[k, 2]), x0, a2)
            a3 = vfma(vsplat(wc[k, 3]), x0, a3)
    vstore(acc[0], ob, a0)
    vstore(acc[1], ob, a1)
    vstore(acc[2], ob, a2)
    vstore(acc[3], ob, a3)


@njit
def _run_jobs(xb, cpitch, channels, offs, jobs, wt, acc):
    """Every job of the engine for one block and one output tile (``wt: [C, taps, 4]``) into ``acc``."""
    lanes = 64 // xb.itemsize
    for jb in range(jobs.shape[0]):
        t0, nt, ibase, rin = jobs[jb, 0], jobs[jb, 1], jobs[jb, 2], jobs[jb, 3]
        obase, orow, ostep, nu, nv = jobs[jb, 4], jobs[jb, 5], jobs[jb, 6], jobs[jb, 7], jobs[jb, 8]
        for u in range(nu):
            ib = (ibase + u * rin) * lanes
            ob = (obase + u * orow) * lanes
            v = 0
            while v + TILE_P <= nv:
                _tile_4x4(xb, ib + v * lanes, cpitch, channels, offs, t0, nt, wt, acc, ob + v * ostep * lanes, ostep)
                v += TILE_P
            while v < nv:
                _tile_4x1(xb, ib + v * lanes, cpitch, channels, offs, t0, nt, wt, acc, ob + v * ostep * lanes)
                v += 1


@njit_parallel
def _correlate(xp, n, channels, nvec, offs, jobs, wt, bias, out_channels, hw_out, accs, live, out):
    """``out`` (flat NCHW, ``N x out_channels x hw_out``) = the engine's jobs over the packed input
    ``xp: [blocks, C*nvec*L]``, plus ``bias``; one (block, output tile) per iteration, through the
    thread's ``accs[t]: [4, hw_out*L]``. A block with ``live[block] == 0`` (silent, module doc)
    gets the accumulators' starting value, ``+0``, instead of its jobs."""
    lanes = 64 // xp.itemsize
    blocks = (n + lanes - 1) // lanes
    tiles = wt.shape[0]
    cpitch = nvec * lanes
    for item in numba.prange(blocks * tiles):
        block, tile = item // tiles, item % tiles
        acc = accs[numba.get_thread_id()]
        if live[block]:
            _run_jobs(xp[block], cpitch, channels, offs, jobs, wt[tile], acc)
        else:
            acc[:, :] = 0.0
        n0 = block * lanes
        o0 = tile * TILE_O
        _unpack_tile(acc, bias, o0, min(TILE_O, out_channels - o0), out_channels, hw_out, n0,
                     min(lanes, n - n0), out)


# ---------------------------------------------------------------- weight gradient
@njit_parallel
def _wgrad(xp, xnvec, gp, gnvec, n, posx, posg, pairs, out_channels, per_item, live, out):
    """``out[o, u] = sum_{n, p, q} gy[n, o, p, q] * x[n, c_u, (p, q) + tap_u]`` for every output
    channel ``o`` and pair ``u = (c_u, tap_u)``, by 4 x 4 tiles of ``(o, u)``, ``per_item`` tiles of
    pairs per iteration.

    ``xp: [blocks, C*xnvec*L]`` (the forward's layout), ``gp: [blocks, C_out*gnvec*L]``; output
    position ``k`` (of ``Ho*Wo``, row-major) sits at vector ``posx[k]`` of ``x``'s plane and
    ``posg[k]`` of ``gy``'s (one flat loop over positions: with rows of 4 or 8 positions a loop
    per row cost a quarter of the time). ``pairs: [U, 2]``: ``(c, tap offset in vectors)``, ``U`` a
    multiple of 4 (padded with repeats). ``out: [C_out4 / 4, U / 4, 16]``: tile ``(ot, ut)``,
    entry ``4 i + j`` for output channel ``4 ot + i`` and pair ``4 ut + j`` (:func:`tiles_to_matrix`).
    Silent blocks (``live[block] == 0``, module doc) before the first live block are skipped: the
    accumulators run over the blocks in order, and only there are they still exactly ``+0``.
    """
    utiles = pairs.shape[0] // TILE_U
    otiles = out.shape[0]
    groups = (utiles + per_item - 1) // per_item
    for item in numba.prange(otiles * groups):
        ot, group = item // groups, item % groups
        for ut in range(group * per_item, min(utiles, (group + 1) * per_item)):
            _wgrad_tile(xp, xnvec, gp, gnvec, n, posx, posg, pairs, out_channels, ot, ut, live, out)


@njit
def _wgrad_tile(xp, xnvec, gp, gnvec, n, posx, posg, pairs, out_channels, ot, ut, live, out):
    """One 4 x 4 tile of :func:`_wgrad`: output channels ``4 ot ...``, pairs ``4 ut ...``; each
    accumulator sums lane ``l`` (image ``block*L + l``) over blocks and positions in order, then
    the lanes by :func:`._simd.vstore_lanesums`'s fixed tree."""
    lanes = 64 // xp.itemsize
    blocks = (n + lanes - 1) // lanes
    xpitch, gpitch = xnvec * lanes, gnvec * lanes
    o0, u0 = ot * TILE_O, ut * TILE_U
    g0 = min(o0, out_channels - 1) * gpitch
    g1 = min(o0 + 1, out_channels - 1) * gpitch
    g2 = min(o0 + 2, out_channels - 1) * gpitch
    g3 = min(o0 + 3, out_channels - 1) * gpitch
    x0 = pairs[u0, 0] * xpitch + pairs[u0, 1] * lanes
    x1 = pairs[u0 + 1, 0] * xpitch + pairs[u0 + 1, 1] * lanes
    x2 = pairs[u0 + 2, 0] * xpitch + pairs[u0 + 2, 1] * lanes
    x3 = pairs[u0 + 3, 0] * xpitch + pairs[u0 + 3, 1] * lanes
    z = vsplat(xp.dtype.type(0))
    a00 = a01 = a02 = a03 = a10 = a11 = a12 = a13 = z
    a20 = a21 = a22 = a23 = a30 = a31 = a32 = a33 = z
    started = False
    for block in range(blocks):
        if not (started or live[block]):
            continue  # a silent block before the first live one: the accumulators are still exactly +0
        started = True
        xb, gb = xp[block], gp[block]
        for k in range(posx.shape[0]):
            xi = posx[k] * lanes
            gi = posg[k] * lanes
            v0 = vload(xb, x0 + xi)
            v1 = vload(xb, x1 + xi)
            v2 = vload(xb, x2 + xi)
            v3 = vload(xb, x3 + xi)
            h = vload(gb, g0 + gi)
            a00 = vfma(h, v0, a00)
            a01 = vfma(h, v1, a01)
            a02 = vfma(h, v2, a02)
            a03 = vfma(h, v3, a03)
            h = vload(gb, g1 + gi)
            a10 = vfma(h, v0, a10)
            a11 = vfma(h, v1, a11)
            a12 = vfma(h, v2, a12)
            a13 = vfma(h, v3, a13)
            h = vload(gb, g2 + gi)
            a20 = vfma(h, v0, a20)
            a21 = vfma(h, v1, a21)
            a22 = vfma(h, v2, a22)
            a23 = vfma(h, v3, a23)
            h = vload(gb, g3 + gi)
            a30 = vfma(h, v0, a30)
            a31 = vfma(h, v1, a31)
            a32 = vfma(h, v2, a32)
            a33 = vfma(h, v3, a33)
    vstore_lanesums(out[ot, ut], 0, (a00, a01, a02, a03, a10, a11, a12, a13,
                                     a20, a21, a22, a23, a30, a31, a32, a33))


# ---------------------------------------------------------------- entry points (arrays checked by the caller)
@functools.lru_cache(maxsize=256)
def weight_grad_pairs(c_in, height, width, kh, kw, stride, padding) -> np.ndarray:
    """``[U, 2]``: ``(c, tap offset)`` of every weight ``(c, i, j)`` in row-major order, repeated at the
    end up to a multiple of ``TILE_U`` (the repeats' sums are computed and dropped)."""
    corr, _, _ = forward_geometry(height, width, kh, kw, stride, padding)
    k = kh * kw
    pairs = np.stack([np.repeat(np.arange(c_in, dtype=np.int64), k), np.tile(corr.offs, c_in)], axis=1)
    return np.concatenate([pairs, np.repeat(pairs[-1:], -len(pairs) % TILE_U, axis=0)])


@functools.lru_cache(maxsize=256)
def weight_grad_positions(ho, wo, wq, gbase, grow) -> tuple[np.ndarray, np.ndarray]:
    """``(posx, posg)``: the vector of output position ``(p, q)`` (row-major) in ``x``'s plane
    (``p*wq + q``) and in ``gy``'s (``gbase + p*grow + q``)."""
    p, q = np.meshgrid(np.arange(ho, dtype=np.int64), np.arange(wo, dtype=np.int64), indexing="ij")
    return (p * wq + q).ravel(), (gbase + p * grow + q).ravel()


def tiles_to_matrix(res):
    """``[O/4, U/4, 16]`` weight-gradient tiles (:func:`_wgrad`) -> the ``[O, U]`` matrix."""
    otiles, utiles = res.shape[:2]
    return res.reshape(otiles, utiles, TILE_O, TILE_U).transpose(0, 2, 1, 3).reshape(otiles * TILE_O, utiles * TILE_U)


def pack(x, plane: Plane, scratch_name=None) -> np.ndarray:
    """``[blocks, C * nvec * L]``: the lane layout of ``x: [N, C, H, W]`` (C-contiguous), in a new
    array or in the scratch buffer ``scratch_name`` (:mod:`._workspace`)."""
    n, c = x.shape[:2]
    lanes = lanes_of(x.dtype)
    shape = (-(-n // lanes), c * plane.nvec * lanes)
    out = np.empty(shape, dtype=x.dtype) if scratch_name is None else scratch(scratch_name, shape, x.dtype)
    if out.size:
        per_item = max(1, ITEM_ELEMENTS // max(1, plane.nvec * lanes))
        _pack(x.reshape(-1), n, c, x.shape[2] * x.shape[3], plane.dpos, plane.pad, plane.used(lanes), plane.nvec,
              per_item, out)
    return out


@njit
def _mark_silent(xp, live):
    """``live[b] = 0`` for every block ``b`` of ``xp`` whose values are all zero (``+-0``); a NaN is not zero.
    Chunks of 512 values with no early exit inside (an integer OR, which LLVM vectorizes), a stop
    after the first chunk that holds a non-zero value."""
    for b in range(xp.shape[0]):
        row = xp[b]
        size = row.shape[0]
        i = 0
        hit = 0
        while i < size and hit == 0:
            end = min(i + 512, size)
            for j in range(i, end):
                hit |= row[j] != 0
            i = end
        if hit == 0:
            live[b] = 0


def live_blocks(xp, partner) -> np.ndarray:
    """``uint8 [blocks]``: 1 for a block of the packed ``xp`` that must be computed, 0 for a silent one
    (all zeros) when every value of ``partner`` (what they multiply) is finite (module doc)."""
    live = np.ones(xp.shape[0], dtype=np.uint8)
    if SKIP_SILENT_BLOCKS and xp.size:
        _mark_silent(xp, live)
        if not live.all() and count_nonfinite(partner):
            live[:] = 1
    return live


@njit
def padding_adds_nothing(wt, bias) -> bool:
    """Whether the taps that read only padding can be left out with the same bits (module doc, "Padded
    rows"): every weight finite (``inf * 0`` is NaN) and no bias of ``-0`` (it keeps the sign of an
    accumulator at ``-0``, which a padding product of ``+0`` would have turned into ``+0``)."""
    for i in range(bias.shape[0]):
        if bias[i] == 0 and np.signbit(bias[i]):
            return False
    return _count_nonfinite(wt.ravel()) == 0


def correlate(xp, n, channels, corr: Correlation, wt, bias, out):
    """``out: [N, C_o, Ho, Wo]`` (preallocated, C-contiguous) from the packed input ``xp``."""
    lanes = lanes_of(xp.dtype)
    hw_out = out.shape[2] * out.shape[3]
    accs = scratch("lanes.acc", (current_threads(), TILE_O, hw_out * lanes), xp.dtype)
    trim = TRIM_PADDED_ROWS and corr.trims and padding_adds_nothing(wt, bias)
    _correlate(xp, n, channels, corr.plane.nvec, corr.offs, corr.trimmed_jobs if trim else corr.jobs, wt, bias,
               out.shape[1], hw_out, accs, live_blocks(xp, wt), out.reshape(-1))


def conv2d_forward(x, weight, bias, stride, padding, out=None):
    """Forward on the lanes path (``groups = 1``); see :func:`reference.conv.conv2d_forward`.
    ``out``: a C-contiguous ``[N, C_out, Ho, Wo]`` array to write into (else allocated)."""
    n, c_in, height, width = x.shape
    c_out, _, kh, kw = weight.shape
    corr, _, _ = forward_geometry(height, width, kh, kw, stride, padding)
    (sh, sw), (ph, pw) = stride, padding
    ho, wo = (height + 2 * ph - kh) // sh + 1, (width + 2 * pw - kw) // sw + 1
    if out is None:
        out = np.empty((n, c_out, ho, wo), dtype=x.dtype)
    if out.size == 0:
        return out
    bias = np.zeros(c_out, dtype=x.dtype) if bias is None else bias
    xp = pack(x, corr.plane, "lanes.x")
    wt = tile_weights(weight, corr, False, scratch("lanes.w", (-(-c_out // TILE_O), c_in, len(corr.taps), TILE_O),
                                                   x.dtype))
    correlate(xp, n, c_in, corr, wt, bias, out)
    return out


def conv2d_backward(grad_out, x, weight, stride, padding, need_x, need_weight):
    """``(gx, gw)`` on the lanes path (``groups = 1``; ``None`` where not needed)."""
    n, c_in, height, width = x.shape
    c_out, _, kh, kw = weight.shape
    ho, wo = grad_out.shape[2:]
    gx = gw = None
    if need_x:
        dcorr, mt, lt, grow = input_grad_geometry(height, width, kh, kw, stride, padding, ho, wo)
        gplane = dcorr.plane
    else:  # the weight gradient alone reads gy unpadded
        mt, lt, grow = 0, 0, wo
        gplane = plane_layout(ho, wo, 1, 1, 0, 0, ho, wo, ((0, 0),))
    gp = pack(grad_out, gplane, "lanes.g")
    if need_x:
        gx = np.empty_like(x)
        if gx.size:
            wt = tile_weights(weight, dcorr, True, scratch(
                "lanes.w", (-(-c_in // TILE_O), c_out, len(dcorr.taps), TILE_O), x.dtype))
            correlate(gp, n, c_out, dcorr, wt, np.zeros(c_in, dtype=x.dtype), gx)
    if need_weight:
        corr, _, wq = forward_geometry(height, width, kh, kw, stride, padding)
        xp = pack(x, corr.plane, "lanes.x")
        pairs = weight_grad_pairs(c_in, height, width, kh, kw, stride, padding)
        u = c_in * kh * kw
        res = scratch("lanes.gw", (-(-c_out // TILE_O), pairs.shape[0] // TILE_U, TILE_O * TILE_U), x.dtype)
        if n and res.size:
            fmas = TILE_O * TILE_U * -(-n // lanes_of(x.dtype)) * ho * wo
            posx, posg = weight_grad_positions(ho, wo, wq, mt * grow + lt, grow)
            _wgrad(xp, corr.plane.nvec, gp, gplane.nvec, n, posx, posg, pairs, c_out, max(1, ITEM_FMAS // fmas),
                   live_blocks(xp, gp), res)
        else:
            res[...] = 0
        # a copy: with one tile of pairs (c_in kh kw = 4) the slice is a view of the reused scratch buffer
        gw = np.array(tiles_to_matrix(res)[:c_out, :u], copy=True).reshape(c_out, c_in, kh, kw)
    return gx, gw
