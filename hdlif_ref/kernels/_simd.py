"""Explicit SIMD values for Numba kernels: 64-byte vectors kept in registers.

Numba's loop vectorizer only vectorizes innermost loops, so an accumulator that
lives across an outer loop (the reduction of a convolution over channels and
taps) goes through memory on every step. The register-blocked convolution
kernels (:mod:`.conv_lanes`) instead hold a tile of accumulators as SSA vector
values: each is an LLVM ``<L x float>`` (``L = 64 / itemsize``: 16 float32 or
8 float64 lanes, one AVX-512 register; LLVM splits it on narrower machines), so
LLVM allocates them to registers for the whole reduction.

The operations are Numba intrinsics, usable only inside jitted code; they do no
bounds checking (the kernels are private and their callers size every buffer):

* ``vload(a, i)`` / ``vstore(a, i, v)``: ``L`` contiguous elements of a 1-D
  contiguous array from index ``i`` (no alignment needed);
* ``vsplat(x)``: ``x`` in every lane;
* ``vfma(a, b, c)``: ``a * b + c`` per lane, as ``llvm.fmuladd``: one rounding
  where the machine has FMA (the contraction ``fastmath={"contract"}`` allows,
  DESIGN.md), else a multiply and an add. No reassociation: each lane's sum runs
  in the order the kernel writes it;
* ``vlanesum(v)``: the sum of the lanes in a fixed order (lane ``l`` plus lane
  ``l + L/2``, then ``l + L/4``, ..., a fixed tree); ``vstore_lanesums(a, i, t)``
  stores the lane sums of a tuple of vectors (the same tree, ``L`` at a time);
* ``vtranspose_pack`` / ``vtranspose_unpack``: an ``L x L`` block moved between
  ``L`` images stored apart (NCHW rows) and ``L`` vectors with one image per lane
  (transposed by ``log2(L)`` rounds of two-source shuffles; see their docstrings);
* ``vavgpool2x2(x, i, out, o, width)``: ``L`` outputs of a 2x2, stride-2 average pooling from
  the ``4L`` inputs ``x[i:i + 4L]`` (whole pairs of rows of ``width`` elements, ``width`` a
  literal dividing ``2L``), each the float64 sum ``((0 + a) + b) + c) + d`` times ``0.25``, as
  the scalar kernel (see its docstring); ``vavgpool2x2_grad(g, o, gx, i, width)`` its gradient:
  each of ``L`` output gradients' share ``0.0 + g * 0.25`` (float64) to the four inputs of its window.
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, models, register_model

#: Bytes per vector: one AVX-512 register.
VECTOR_BYTES = 64


def lanes_of(dtype) -> int:
    """Lanes of a vector of ``dtype``: 16 for float32, 8 for float64."""
    return VECTOR_BYTES // np.dtype(dtype).itemsize


class Vector(types.Type):
    """A Numba type for an LLVM ``<lanes x dtype>`` value."""

    def __init__(self, dtype, lanes):
        self.dtype = dtype
        self.lanes = lanes
        super().__init__(name=f"Vector({dtype} x {lanes})")


@register_model(Vector)
class _VectorModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, ir.VectorType(dmm.lookup(fe_type.dtype).get_value_type(), fe_type.lanes))


def _vector_of(dtype):
    return Vector(dtype, VECTOR_BYTES // (dtype.bitwidth // 8))


def _vector_ptr(context, builder, array_type, array, index, vector_type):
    data = context.make_array(array_type)(context, builder, array).data
    return builder.bitcast(builder.gep(data, [index]), context.get_value_type(vector_type).as_pointer())


def _is_float_array(a):
    return isinstance(a, types.Array) and isinstance(a.dtype, types.Float)


@intrinsic
def vload(typingctx, a, i):
    if not (_is_float_array(a) and isinstance(i, types.Integer)):
        return None
    vt = _vector_of(a.dtype)

    def codegen(context, builder, sig, args):
        ptr = _vector_ptr(context, builder, sig.args[0], args[0], args[1], vt)
        return builder.load(ptr, align=a.dtype.bitwidth // 8)

    return vt(a, i), codegen


@intrinsic
def vstore(typingctx, a, i, v):
    if not (_is_float_array(a) and isinstance(i, types.Integer) and v == _vector_of(a.dtype)):
        return None

    def codegen(context, builder, sig, args):
        ptr = _vector_ptr(context, builder, sig.args[0], args[0], args[1], v)
        builder.store(args[2], ptr, align=a.dtype.bitwidth // 8)
        return context.get_dummy_value()

    return types.none(a, i, v), codegen


@intrinsic
def vsplat(typingctx, x):
    if not isinstance(x, types.Float):
        return None
    vt = _vector_of(x)

    def codegen(context, builder, sig, args):
        ty = context.get_value_type(vt)
        one = builder.insert_element(ir.Constant(ty, ir.Undefined), args[0], ir.Constant(ir.IntType(32), 0))
        mask = ir.Constant(ir.VectorType(ir.IntType(32), vt.lanes), [0] * vt.lanes)
        return builder.shuffle_vector(one, ir.Constant(ty, ir.Undefined), mask)

    return vt(x), codegen


@intrinsic
def vfma(typingctx, a, b, c):
    if not (isinstance(a, Vector) and a == b == c):
        return None

    def codegen(context, builder, sig, args):
        ty = args[0].type
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ty, [ty, ty, ty]),
                                            f"llvm.fmuladd.v{a.lanes}f{a.dtype.bitwidth}")
        return builder.call(fn, args)

    return a(a, b, c), codegen


def _halve(builder, v, width):
    """The sum of the low and high halves of the first ``width`` lanes of ``v``: ``width / 2`` lanes."""
    half = width // 2
    i32 = ir.IntType(32)
    lo = builder.shuffle_vector(v, v, ir.Constant(ir.VectorType(i32, half), list(range(half))))
    hi = builder.shuffle_vector(v, v, ir.Constant(ir.VectorType(i32, half), list(range(half, width))))
    return builder.fadd(lo, hi)


@intrinsic
def vlanesum(typingctx, v):
    if not isinstance(v, Vector):
        return None

    def codegen(context, builder, sig, args):
        x, width = args[0], v.lanes
        while width > 1:
            x = _halve(builder, x, width)
            width //= 2
        return builder.extract_element(x, ir.Constant(ir.IntType(32), 0))

    return v.dtype(v), codegen


def _lanesums(builder, parts):
    """``L`` vectors -> one vector whose lane ``j`` is the lane sum of ``parts[j]`` by ``vlanesum``'s tree,
    in ``log2(L)`` rounds that add the halves of two vectors' partial sums at once."""
    n = len(parts)
    i32 = ir.IntType(32)
    width = n  # lanes per accumulator in each vector of ``parts``
    while width > 1:
        half = width // 2
        lo = [slot * width + i for slot in range(n // width) for i in range(half)]
        lo = lo + [n + k for k in lo]
        hi = [k + half for k in lo]
        lo_mask = ir.Constant(ir.VectorType(i32, n), lo)
        hi_mask = ir.Constant(ir.VectorType(i32, n), hi)
        parts = [builder.fadd(builder.shuffle_vector(parts[k], parts[k + 1], lo_mask),
                              builder.shuffle_vector(parts[k], parts[k + 1], hi_mask))
                 for k in range(0, len(parts), 2)]
        width = half
    return parts[0]


@intrinsic
def vstore_lanesums(typingctx, a, i, t):
    """``a[i + j] = vlanesum(t[j])`` for every vector of the tuple ``t`` (a multiple of ``L`` of them),
    bit for bit as ``vlanesum``, with ``L`` sums per round of shuffles."""
    if not (_is_float_array(a) and isinstance(i, types.Integer) and isinstance(t, types.UniTuple)
            and t.dtype == _vector_of(a.dtype) and t.count % t.dtype.lanes == 0):
        return None
    vt = t.dtype
    n = vt.lanes

    def codegen(context, builder, sig, args):
        first = _intp(context, builder, args[1], sig.args[1])
        vecs = [builder.extract_value(args[2], j) for j in range(t.count)]
        for g in range(t.count // n):
            ptr = _vector_ptr(context, builder, sig.args[0], args[0],
                              builder.add(first, ir.Constant(first.type, g * n)), vt)
            builder.store(_lanesums(builder, vecs[g * n:(g + 1) * n]), ptr, align=a.dtype.bitwidth // 8)
        return context.get_dummy_value()

    return types.none(a, i, t), codegen


def _transpose(builder, rows):
    """Transpose ``L`` vectors of ``L`` lanes (``rows[l][j]`` -> ``out[j][l]``) by block swaps.

    Round ``h = L/2, L/4, ..., 1``: in each pair of rows ``(l, l + h)`` with ``l & h == 0``,
    the elements ``(l, j)`` with ``j & h`` set and ``(l + h, j - h)`` trade places.
    """
    n = len(rows)
    i32 = ir.IntType(32)
    rows = list(rows)
    h = n // 2
    while h >= 1:
        low = [j if not j & h else n + j - h for j in range(n)]
        high = [j + h if not j & h else n + j for j in range(n)]
        low_mask = ir.Constant(ir.VectorType(i32, n), low)
        high_mask = ir.Constant(ir.VectorType(i32, n), high)
        for l in range(n):
            if l & h:
                continue
            a, b = rows[l], rows[l + h]
            rows[l] = builder.shuffle_vector(a, b, low_mask)
            rows[l + h] = builder.shuffle_vector(a, b, high_mask)
        h //= 2
    return rows


def _intp(context, builder, value, ty):
    return context.cast(builder, value, ty, types.intp)


@intrinsic
def vtranspose_pack(typingctx, src, sbase, sstride, dst, dpos, j0):
    """Rows ``l < L`` of ``L`` elements at ``src[sbase + l * sstride]``, transposed: vector ``j``
    (element ``j`` of every row) is stored at ``dst[dpos[j0 + j] * L]`` where ``dpos[j0 + j] >= 0``."""
    if not (_is_float_array(src) and _is_float_array(dst) and src.dtype == dst.dtype
            and isinstance(dpos, types.Array) and isinstance(dpos.dtype, types.Integer)):
        return None
    vt = _vector_of(src.dtype)
    n = vt.lanes

    def codegen(context, builder, sig, args):
        s_arr, base, stride, d_arr, pos_arr, first = args
        base = _intp(context, builder, base, sig.args[1])
        stride = _intp(context, builder, stride, sig.args[2])
        first = _intp(context, builder, first, sig.args[5])
        rows = [builder.load(_vector_ptr(context, builder, sig.args[0], s_arr,
                                         builder.add(base, builder.mul(stride, ir.Constant(base.type, l))), vt),
                             align=src.dtype.bitwidth // 8) for l in range(n)]
        cols = _transpose(builder, rows)
        pos_data = context.make_array(sig.args[4])(context, builder, pos_arr).data
        for j in range(n):
            at = builder.load(builder.gep(pos_data, [builder.add(first, ir.Constant(first.type, j))]))
            at = context.cast(builder, at, dpos.dtype, types.intp)
            with builder.if_then(builder.icmp_signed(">=", at, ir.Constant(at.type, 0)), likely=True):
                ptr = _vector_ptr(context, builder, sig.args[3], d_arr, builder.mul(at, ir.Constant(at.type, n)), vt)
                builder.store(cols[j], ptr, align=src.dtype.bitwidth // 8)
        return context.get_dummy_value()

    return types.none(src, sbase, sstride, dst, dpos, j0), codegen


@intrinsic
def vtranspose_unpack(typingctx, src, s0, shift, dst, dbase, dstride):
    """Vectors ``j < L`` at ``src[s0 + j * L]``, plus ``shift`` in every lane, transposed: row ``l``
    (lane ``l`` of every vector) is stored at ``dst[dbase + l * dstride]``."""
    if not (_is_float_array(src) and _is_float_array(dst) and src.dtype == dst.dtype and shift == src.dtype):
        return None
    vt = _vector_of(src.dtype)
    n = vt.lanes

    def codegen(context, builder, sig, args):
        s_arr, first, sh, d_arr, base, stride = args
        first = _intp(context, builder, first, sig.args[1])
        base = _intp(context, builder, base, sig.args[4])
        stride = _intp(context, builder, stride, sig.args[5])
        ty = context.get_value_type(vt)
        splat = builder.shuffle_vector(
            builder.insert_element(ir.Constant(ty, ir.Undefined), sh, ir.Constant(ir.IntType(32), 0)),
            ir.Constant(ty, ir.Undefined), ir.Constant(ir.VectorType(ir.IntType(32), n), [0] * n))
        vecs = []
        for j in range(n):
            at = builder.add(first, ir.Constant(first.type, j * n))
            v = builder.load(_vector_ptr(context, builder, sig.args[0], s_arr, at, vt), align=src.dtype.bitwidth // 8)
            vecs.append(builder.fadd(v, splat))
        rows = _transpose(builder, vecs)
        for l in range(n):
            at = builder.add(base, builder.mul(stride, ir.Constant(base.type, l)))
            builder.store(rows[l], _vector_ptr(context, builder, sig.args[3], d_arr, at, vt),
                          align=src.dtype.bitwidth // 8)
        return context.get_dummy_value()

    return types.none(src, s0, shift, dst, dbase, dstride), codegen


#: Row widths :func:`vavgpool2x2` takes (each divides ``2L`` for float32 and float64).
AVGPOOL_WIDTHS = (2, 4, 8, 16)


def _pool_operands(width, lanes):
    """Input offsets (in a block of ``4 * lanes``) of the four operands of each of the ``lanes`` outputs:
    output ``j`` is row pair ``j // (width/2)``, column pair ``j % (width/2)``; ``a, b`` its top-left and
    top-right inputs, ``c, d`` the bottom ones."""
    half = width // 2
    top = [(j // half) * 2 * width + 2 * (j % half) for j in range(lanes)]
    return top, [k + 1 for k in top], [k + width for k in top], [k + width + 1 for k in top]


def _gather(builder, vecs, offsets, lanes):
    """The vector ``[x[k] for k in offsets]`` of the ``4 * lanes`` values in ``vecs`` (four vectors), by
    three two-source shuffles: one picks every offset below ``2 * lanes`` from ``vecs[0:2]``, one every other
    from ``vecs[2:4]``, and the third takes each lane from the one that holds it."""
    i32 = ir.IntType(32)
    low = [k if k < 2 * lanes else 0 for k in offsets]
    high = [k - 2 * lanes if k >= 2 * lanes else 0 for k in offsets]
    pick = [j if k < 2 * lanes else lanes + j for j, k in enumerate(offsets)]
    first = builder.shuffle_vector(vecs[0], vecs[1], ir.Constant(ir.VectorType(i32, lanes), low))
    second = builder.shuffle_vector(vecs[2], vecs[3], ir.Constant(ir.VectorType(i32, lanes), high))
    return builder.shuffle_vector(first, second, ir.Constant(ir.VectorType(i32, lanes), pick))


def _pool_args(a, i, b, j, width) -> bool:
    """The pooling intrinsics' arguments: two float arrays of one dtype, two integer offsets, a literal width
    of :data:`AVGPOOL_WIDTHS`."""
    return (_is_float_array(a) and _is_float_array(b) and a.dtype == b.dtype and isinstance(i, types.Integer)
            and isinstance(j, types.Integer) and isinstance(width, types.IntegerLiteral)
            and width.literal_value in AVGPOOL_WIDTHS)


@intrinsic
def vavgpool2x2(typingctx, x, i, out, o, width):
    """``out[o + j]``, ``j < L``: the average of output ``j``'s 2x2 window in ``x[i : i + 4L]``, a run of whole
    pairs of rows of ``width`` elements (``width``: a literal of :data:`AVGPOOL_WIDTHS`). Each output is
    ``float(((((0.0 + a) + b) + c) + d) * 0.25)`` in float64, ``a, b`` the top row's pair and ``c, d`` the
    bottom's: per lane the operations, in the order, of the scalar 2x2 kernel (``fastmath`` off)."""
    if not _pool_args(x, i, out, o, width):
        return None
    vt = _vector_of(x.dtype)
    lanes = vt.lanes
    operands = _pool_operands(width.literal_value, lanes)

    def codegen(context, builder, sig, args):
        src, first, dst, at = args[0], args[1], args[2], args[3]
        first = _intp(context, builder, first, sig.args[1])
        at = _intp(context, builder, at, sig.args[3])
        vecs = [builder.load(_vector_ptr(context, builder, sig.args[0], src,
                                         builder.add(first, ir.Constant(first.type, k * lanes)), vt),
                             align=x.dtype.bitwidth // 8) for k in range(4)]
        wide = ir.VectorType(ir.DoubleType(), lanes)
        total = ir.Constant(wide, [0.0] * lanes)
        for offsets in operands:
            v = _gather(builder, vecs, offsets, lanes)
            total = builder.fadd(total, builder.fpext(v, wide) if x.dtype.bitwidth == 32 else v)
        mean = builder.fmul(total, ir.Constant(wide, [0.25] * lanes))
        if x.dtype.bitwidth == 32:
            mean = builder.fptrunc(mean, context.get_value_type(vt))
        builder.store(mean, _vector_ptr(context, builder, sig.args[2], dst, at, vt), align=x.dtype.bitwidth // 8)
        return context.get_dummy_value()

    return types.none(x, i, out, o, width), codegen


@intrinsic
def vavgpool2x2_grad(typingctx, g, o, gx, i, width):
    """``gx[i : i + 4L]`` (whole pairs of rows of ``width`` elements, as :func:`vavgpool2x2`): each input gets the
    share ``float(0.0 + g[o + j] * 0.25)`` (float64 arithmetic) of the output ``j`` whose 2x2 window holds it,
    as the scalar 2x2 backward computes it: one vector of shares, then four single-source shuffles."""
    if not _pool_args(g, o, gx, i, width):
        return None
    vt = _vector_of(g.dtype)
    lanes = vt.lanes
    owner = [0] * (4 * lanes)  # the output whose window holds input k of the run
    for j, operands in enumerate(zip(*_pool_operands(width.literal_value, lanes))):
        for k in operands:
            owner[k] = j

    def codegen(context, builder, sig, args):
        src, at, dst, first = args[0], args[1], args[2], args[3]
        at = _intp(context, builder, at, sig.args[1])
        first = _intp(context, builder, first, sig.args[3])
        v = builder.load(_vector_ptr(context, builder, sig.args[0], src, at, vt), align=g.dtype.bitwidth // 8)
        wide = ir.VectorType(ir.DoubleType(), lanes)
        if g.dtype.bitwidth == 32:
            v = builder.fpext(v, wide)
        share = builder.fadd(ir.Constant(wide, [0.0] * lanes), builder.fmul(v, ir.Constant(wide, [0.25] * lanes)))
        if g.dtype.bitwidth == 32:
            share = builder.fptrunc(share, context.get_value_type(vt))
        i32 = ir.IntType(32)
        for k in range(4):
            mask = ir.Constant(ir.VectorType(i32, lanes), owner[k * lanes:(k + 1) * lanes])
            out = builder.shuffle_vector(share, share, mask)
            ptr = _vector_ptr(context, builder, sig.args[2], dst, builder.add(first, ir.Constant(first.type, k * lanes)),
                              vt)
            builder.store(out, ptr, align=g.dtype.bitwidth // 8)
        return context.get_dummy_value()

    return types.none(g, o, gx, i, width), codegen
