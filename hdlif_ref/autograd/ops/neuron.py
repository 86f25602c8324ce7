"""Neuron ops (SPEC E1-E9): one graph node per sequence (``*_seq``) or per time step (``*_step``).

Each op wraps a fused kernel of :mod:`hdlif_ref.kernels` (``hdlif``, ``lif``,
``parallel``, ``membn``). Arguments are checked by the callers in
:mod:`hdlif_ref.neurons.functional`; here the arrays are brought to one float
dtype (float32 with float64 promotes), to the kernels' layout and made contiguous.

Layout: a step tensor ``[N, C, *spatial]`` with per-layer parameters (``lam:
[T]``) is one row of ``F = N C S`` elements; with per-channel parameters
(``[T, C]``) it is ``N`` rows of ``F = C S``. Parameters go to the kernels as
``[T, C]`` (``C = 1`` per layer) and their gradients come back in their own shape.

``*_seq`` ops take ``I: [T, N, ...]``, start from ``u_0 = 0`` and return ``s``
(their backward is STBP, SPEC E4, or with ``gradient="online"`` the truncated
E5). ``*_step`` ops take one step ``I_t: [N, ...]``, the previous state and the
step index ``t``, and return ``(s_t, u_t)``; their backward passes ``dL/du_t`` on
to ``u_{t-1}``, so a chain of steps kept in the graph gives STBP and a chain cut
with ``detach`` gives the online gradients.
"""
from __future__ import annotations

import math

import numpy as np

from ...kernels import bn_neuron as _bn_neuron
from ...kernels import hdlif as _hdlif
from ...kernels import lif as _lif
from ...kernels import membn as _membn
from ...kernels import norm as _norm
from ...kernels import parallel as _parallel
from ...kernels import spike_quantize as _quantize
from ..function import Function, is_zero_grad
from .norm import update_running_stats


def _dtype(*arrays) -> np.dtype:
    return np.result_type(*[a.dtype for a in arrays])


def rows_of(step_shape: tuple[int, ...], per_channel: bool) -> tuple[int, int]:
    """``(rows, F)`` of the kernels' view of one step tensor."""
    size = math.prod(step_shape)
    if not per_channel:
        return 1, size
    return step_shape[0], (size // step_shape[0] if step_shape[0] else math.prod(step_shape[1:]))


def params_tc(dtype: np.dtype, *params: np.ndarray) -> list[np.ndarray]:
    """Parameters ``[T]`` or ``[T, C]`` as contiguous ``[T, C]`` arrays of ``dtype`` (``C = 1`` if none is per channel)."""
    T = params[0].shape[0]
    C = max(p.shape[1] if p.ndim == 2 else 1 for p in params)
    if C == 1 and all(p.ndim == 1 for p in params):  # every parameter [T] (the common case): nothing to broadcast
        return [np.ascontiguousarray(p.reshape(T, 1), dtype=dtype) for p in params]
    return [np.ascontiguousarray(np.broadcast_to(p if p.ndim == 2 else p.reshape(T, 1), (T, C)), dtype=dtype)
            for p in params]


def _per_channel(*params: np.ndarray) -> bool:
    return any(p.ndim == 2 for p in params)


def _grad_as(g: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray | None:
    """A ``[T, C]`` gradient back to its parameter's shape (a per-layer ``[T]`` sums over ``C``)."""
    if g is None:
        return None
    return g.sum(axis=1) if len(shape) == 1 else g


def _c(x: np.ndarray, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=dtype).reshape(shape)


def _full_grad(g_t: np.ndarray | None, t: int, shape: tuple[int, ...]) -> np.ndarray | None:
    """The gradient of a whole ``[T]`` / ``[T, C]`` parameter from the ``[1, C]`` gradient of its row ``t``."""
    if g_t is None:
        return None
    full = np.zeros((shape[0], g_t.shape[1]), dtype=g_t.dtype)
    full[t] = g_t[0]
    return _grad_as(full, shape)


def _stands_alone(g_u: np.ndarray, need_u_prev: bool) -> bool:
    """True when a one-step backward has no gradient through the state: none reaches ``u_t`` (the engine's zeros
    for an unused output) and none is asked of ``u_{t-1}``, as in an online step (SPEC E5). E4 then reduces to
    E5's step-alone form, which the online kernels compute with less work (the same values, signs of zeros aside,
    NaN where E4's ``0 * du/dm`` is NaN; tested)."""
    return not need_u_prev and is_zero_grad(g_u)


# ---------------------------------------------------------------------------- HD-LIF
class HDLIFSeq(Function):
    """``s* = hdlif_seq(I, lam, theta)`` over all ``T`` steps (SPEC E1, E2; backward E4 or E5)."""

    name = "hdlif_seq"

    @staticmethod
    def forward(ctx, I, lam, theta, gradient="stbp"):
        dtype = _dtype(I, lam, theta)
        T = I.shape[0]
        rows, F = rows_of(I.shape[1:], _per_channel(lam, theta))
        I3 = _c(I, dtype, (T, rows, F))
        lam2, theta2 = params_tc(dtype, lam, theta)
        u0 = np.zeros((rows, F), dtype=dtype)
        s, _, mask = _hdlif.hdlif_forward(I3, u0, lam2, theta2)
        ctx.save_for_backward(mask, I3, u0, lam2, theta2)
        ctx.shapes, ctx.gradient = (I.shape, lam.shape, theta.shape), gradient
        return s.reshape(I.shape)

    @staticmethod
    def backward(ctx, g):
        mask, I3, u0, lam2, theta2 = ctx.saved_tensors
        shape_I, shape_lam, shape_theta = ctx.shapes
        need_lam = ctx.needs_input_grad[1]
        gs = _c(g, I3.dtype, I3.shape)
        if ctx.gradient == "online":
            gI, glam, gtheta = _hdlif.hdlif_backward_online(gs, mask, I3, u0, lam2, theta2, need_lam)
        else:
            gI, _, glam, gtheta = _hdlif.hdlif_backward_stbp(gs, u0, mask, I3, u0, lam2, theta2, need_lam)
        return gI.reshape(shape_I), _grad_as(glam, shape_lam), _grad_as(gtheta, shape_theta)


class HDLIFStep(Function):
    """``(s*_t, u_t) = hdlif_step(I_t, u_prev, lam, theta, t=t)``: step ``t`` of SPEC E1, E2."""

    name = "hdlif_step"

    @staticmethod
    def forward(ctx, I_t, u_prev, lam, theta, t=0):
        dtype = _dtype(I_t, u_prev, lam, theta)
        rows, F = rows_of(I_t.shape, _per_channel(lam, theta))
        I3 = _c(I_t, dtype, (1, rows, F))
        u0 = _c(u_prev, dtype, (rows, F))
        lam_t, theta_t = (p[t:t + 1] for p in params_tc(dtype, lam, theta))
        s, u, mask = _hdlif.hdlif_forward(I3, u0, lam_t, theta_t)
        ctx.save_for_backward(mask, I3, u0, lam_t, theta_t)
        ctx.t, ctx.shapes = t, (I_t.shape, lam.shape, theta.shape)
        return s.reshape(I_t.shape), u.reshape(I_t.shape)

    @staticmethod
    def backward(ctx, grads):
        g_s, g_u = grads
        mask, I3, u0, lam_t, theta_t = ctx.saved_tensors
        shape, shape_lam, shape_theta = ctx.shapes
        need_lam = ctx.needs_input_grad[2]
        gs, gu0 = _c(g_s, I3.dtype, I3.shape), None
        if _stands_alone(g_u, ctx.needs_input_grad[1]):
            gI, glam, gtheta = _hdlif.hdlif_backward_online(gs, mask, I3, u0, lam_t, theta_t, need_lam)
        else:
            gI, gu0, glam, gtheta = _hdlif.hdlif_backward_stbp(gs, _c(g_u, I3.dtype, u0.shape), mask, I3, u0,
                                                               lam_t, theta_t, need_lam)
        return (gI.reshape(shape), gu0.reshape(shape) if ctx.needs_input_grad[1] else None,
                _full_grad(glam, ctx.t, shape_lam), _full_grad(gtheta, ctx.t, shape_theta))


class NonFiniteStep(Exception):
    """Raised by :class:`BNHDLIFStep` and :class:`BNLIFStep` before they record or change anything when a normalized
    current or an unquantized spike is not finite: their caller then runs the plain ops, whose checks name the
    value."""


class _BNStepInputs:
    """What :class:`BNHDLIFStep` and :class:`BNLIFStep` take apart the same way: ``x`` and ``rest`` = ``[weight],
    [bias], u_prev, lam, theta, ...`` as the kernels want them (``x3: [N, C, L]``, ``u3`` likewise; this step's
    ``lam``, ``theta`` per channel ``[C]`` for the kernel and as ``[1, C']`` rows for the neuron's backward)."""

    __slots__ = ("weight", "bias", "i", "shape", "x3", "u3", "rows", "F", "lam_t", "theta_t", "lam_c", "theta_c")

    def __init__(self, op, x, rest, has_weight, has_bias, t):
        self.weight = rest[0] if has_weight else None
        self.bias = rest[has_weight] if has_bias else None
        self.i = i = has_weight + has_bias  # u_prev's index in rest
        u_prev, lam, theta = rest[i:i + 3]
        dtype = x.dtype
        if any(a.dtype != dtype for a in rest):  # the module path (neurons/fused.py) only calls it so
            raise TypeError(f"{op}: every input must have x's dtype {dtype}; got "
                            f"{sorted({str(a.dtype) for a in rest})}")
        self.shape = shape = x.shape
        self.x3 = np.ascontiguousarray(x).reshape(shape[0], shape[1], -1)
        self.rows, self.F = rows_of(shape, _per_channel(lam, theta))
        self.lam_t, self.theta_t = (p[t:t + 1] for p in params_tc(dtype, lam, theta))
        # this step's values per channel, [C] (a per-channel parameter of another channel count is refused)
        self.lam_c, self.theta_c = (np.full(shape[1], p[0, 0], dtype=dtype) if p.shape[1] == 1
                                    else np.ascontiguousarray(np.broadcast_to(p[0], (shape[1],)))
                                    for p in (self.lam_t, self.theta_t))
        self.u3 = np.ascontiguousarray(u_prev).reshape(self.x3.shape)


def _commit_bn(a: _BNStepInputs, bad, mean, var, running_mean, running_var, momentum):
    """After the kernel: :class:`NonFiniteStep` before anything changes, else the running statistics updated."""
    if bad:
        raise NonFiniteStep(f"{bad} non-finite values")
    if running_mean is not None:
        update_running_stats(running_mean, running_var, mean, var, a.x3.shape[0] * a.x3.shape[2], momentum)


def _bn_grads(gI, x3, mean, invstd, weight, needs, has_weight, has_bias, shape) -> list:
    """``BatchNorm.backward`` (training) of the neuron's input gradient ``gI``: ``[gx, [gw], [gb]]``."""
    need_w = has_weight and needs[1]
    need_b = has_bias and needs[1 + has_weight]
    gx, gw, gb = _norm.batch_norm_train_backward(gI.reshape(x3.shape), x3, mean, invstd, weight, needs[0], need_w,
                                                 need_b)
    grads = [gx.reshape(shape) if gx is not None else None]
    grads += [gw] if has_weight else []
    grads += [gb] if has_bias else []
    return grads


class BNHDLIFStep(Function):
    """``(q_t, u_t) = bn_hdlif_step(x, [weight], [bias], u_prev, lam, theta, [step], t=, ...)``: a training batch
    norm of ``x: [N, C, ...]`` (batch statistics, running statistics updated in place), step ``t`` of HD-LIF (SPEC
    E1, E2) and, with ``step``, the ``bits``-bit quantizer (E13), as one node and one forward kernel
    (:func:`hdlif_ref.kernels.bn_neuron.bn_hdlif_graph_step`; docs/performance.md, "Graph steps").

    The nodes :class:`~.norm.BatchNorm` -> :class:`HDLIFStep` -> :class:`~.spike_quantize.SpikeQuantize` give the
    same numbers bit for bit: the forward does their per-element operations in their order, and the backward is
    their three backward kernels, called as they call them, on the same arrays. It keeps no normalized current:
    a one-step HD-LIF backward reads ``u_{t-1}`` and the mask, never the current (it recomputes ``u_{t-1}`` only
    for later steps), so it gets ``u_{t-1}`` in that argument's place. Raises :class:`NonFiniteStep` (nothing
    recorded, no statistics updated) where the plain ops' input checks would raise.
    """

    name = "bn_hdlif_step"

    @staticmethod
    def forward(ctx, x, *rest, has_weight, has_bias, has_step, t, bits, running_mean, running_var, momentum, eps):
        a = _BNStepInputs("bn_hdlif_step", x, rest, has_weight, has_bias, t)
        s = qmax = None
        if has_step:
            s, qmax = x.dtype.type(rest[a.i + 3].reshape(())), x.dtype.type(2 ** bits - 1)
        out, u_new, mean, var, bad, s_star, mask = _bn_neuron.bn_hdlif_graph_step(a.x3, a.weight, a.bias, eps, a.u3,
                                                                                  a.lam_c, a.theta_c, s, qmax)
        _commit_bn(a, bad, mean, var, running_mean, running_var, momentum)
        rows, F, shape = a.rows, a.F, a.shape
        ctx.save_for_backward(a.x3, mean, 1.0 / np.sqrt(var + eps), a.weight, mask.reshape(1, rows, F),
                              a.u3.reshape(rows, F), a.lam_t, a.theta_t, s_star.reshape(shape))
        ctx.meta = (t, shape, rest[a.i + 1].shape, rest[a.i + 2].shape, has_weight, has_bias, has_step, s, qmax,
                    rest[a.i + 3].shape if has_step else None)
        return out.reshape(shape), u_new.reshape(shape)

    @staticmethod
    def backward(ctx, grads):
        g_q, g_u = grads
        x3, mean, invstd, weight, mask, u0, lam_t, theta_t, s_star = ctx.saved_tensors
        t, shape, shape_lam, shape_theta, has_weight, has_bias, has_step, s, qmax, step_shape = ctx.meta
        needs = ctx.needs_input_grad  # x, [weight], [bias], u_prev, lam, theta, [step]
        i = 1 + has_weight + has_bias  # u_prev's index
        g_s, g_step = g_q, None
        if has_step:  # SpikeQuantize.backward
            g_s, g_step = _quantize.spike_quantize_backward(np.ascontiguousarray(g_q, dtype=s_star.dtype), s_star,
                                                            s, qmax)
            g_step = np.asarray(g_step, dtype=s_star.dtype).reshape(step_shape)
        # HDLIFStep.backward, u_{t-1} in the current's place (not read by a one-step backward)
        gs, gu0 = _c(g_s, x3.dtype, mask.shape), None
        if _stands_alone(g_u, needs[i]):
            gI, glam, gtheta = _hdlif.hdlif_backward_online(gs, mask, u0.reshape(mask.shape), u0, lam_t, theta_t,
                                                            needs[i + 1])  # lam's
        else:
            gI, gu0, glam, gtheta = _hdlif.hdlif_backward_stbp(gs, _c(g_u, x3.dtype, u0.shape), mask,
                                                               u0.reshape(mask.shape), u0, lam_t, theta_t,
                                                               needs[i + 1])
        # what the three nodes free between their backward calls is freed here too (peak memory)
        del g_s, gs
        gu0 = gu0.reshape(shape) if needs[i] else None
        grads = _bn_grads(gI, x3, mean, invstd, weight, needs, has_weight, has_bias, shape)  # BatchNorm.backward
        grads += [gu0, _full_grad(glam, t, shape_lam), _full_grad(gtheta, t, shape_theta)]
        grads += [g_step] if has_step else []
        return tuple(grads)


# ---------------------------------------------------------------------------- LIF
class LIFSeq(Function):
    """``s = lif_seq(I, lam, theta, soft=, surrogate=, gamma=)`` over all ``T`` steps (SPEC E7).

    ``surrogate`` is a code of :data:`hdlif_ref.kernels.surrogates.SURROGATES` (0: triangle), ``gamma``
    its width/slope.
    """

    name = "lif_seq"

    @staticmethod
    def forward(ctx, I, lam, theta, soft=False, gamma=1.0, gradient="stbp", surrogate=0):
        dtype = _dtype(I, lam, theta)
        T = I.shape[0]
        rows, F = rows_of(I.shape[1:], _per_channel(lam, theta))
        I3 = _c(I, dtype, (T, rows, F))
        lam2, theta2 = params_tc(dtype, lam, theta)
        u0 = np.zeros((rows, F), dtype=dtype)
        s, _, m = _lif.lif_forward(I3, u0, lam2, theta2, soft)
        ctx.save_for_backward(m, u0, lam2, theta2)
        ctx.shapes, ctx.soft, ctx.gamma, ctx.gradient = (I.shape, lam.shape, theta.shape), soft, gamma, gradient
        ctx.surrogate = surrogate
        return s.reshape(I.shape)

    @staticmethod
    def backward(ctx, g):
        m, u0, lam2, theta2 = ctx.saved_tensors
        shape_I, shape_lam, shape_theta = ctx.shapes
        need_lam = ctx.needs_input_grad[1]
        gs = _c(g, m.dtype, m.shape)
        if ctx.gradient == "online":
            gI, glam, gtheta = _lif.lif_backward_online(gs, m, u0, lam2, theta2, ctx.soft, ctx.surrogate,
                                                        ctx.gamma, need_lam)
        else:
            gI, _, glam, gtheta = _lif.lif_backward_stbp(gs, u0, m, u0, lam2, theta2, ctx.soft, ctx.surrogate,
                                                         ctx.gamma, need_lam)
        return gI.reshape(shape_I), _grad_as(glam, shape_lam), _grad_as(gtheta, shape_theta)


class LIFStep(Function):
    """``(s_t, u_t) = lif_step(I_t, u_prev, lam, theta, t=, soft=, surrogate=, gamma=)``: step ``t`` of SPEC E7."""

    name = "lif_step"

    @staticmethod
    def forward(ctx, I_t, u_prev, lam, theta, t=0, soft=False, gamma=1.0, surrogate=0):
        dtype = _dtype(I_t, u_prev, lam, theta)
        rows, F = rows_of(I_t.shape, _per_channel(lam, theta))
        I3 = _c(I_t, dtype, (1, rows, F))
        u0 = _c(u_prev, dtype, (rows, F))
        lam_t, theta_t = (p[t:t + 1] for p in params_tc(dtype, lam, theta))
        s, u, m = _lif.lif_forward(I3, u0, lam_t, theta_t, soft)
        ctx.save_for_backward(m, u0, lam_t, theta_t)
        ctx.t, ctx.shapes, ctx.soft, ctx.gamma = t, (I_t.shape, lam.shape, theta.shape), soft, gamma
        ctx.surrogate = surrogate
        return s.reshape(I_t.shape), u.reshape(I_t.shape)

    @staticmethod
    def backward(ctx, grads):
        g_s, g_u = grads
        m, u0, lam_t, theta_t = ctx.saved_tensors
        shape, shape_lam, shape_theta = ctx.shapes
        need_lam = ctx.needs_input_grad[2]
        gs, gu0 = _c(g_s, m.dtype, m.shape), None
        if _stands_alone(g_u, ctx.needs_input_grad[1]):
            gI, glam, gtheta = _lif.lif_backward_online(gs, m, u0, lam_t, theta_t, ctx.soft, ctx.surrogate,
                                                        ctx.gamma, need_lam)
        else:
            gI, gu0, glam, gtheta = _lif.lif_backward_stbp(gs, _c(g_u, m.dtype, u0.shape), m, u0, lam_t, theta_t,
                                                           ctx.soft, ctx.surrogate, ctx.gamma, need_lam)
        return (gI.reshape(shape), gu0.reshape(shape) if ctx.needs_input_grad[1] else None,
                _full_grad(glam, ctx.t, shape_lam), _full_grad(gtheta, ctx.t, shape_theta))


class BNLIFStep(Function):
    """``(s_t, u_t) = bn_lif_step(x, [weight], [bias], u_prev, lam, theta, t=, soft=, surrogate=, gamma=, ...)``: a
    training batch norm of ``x: [N, C, ...]`` (batch statistics, running statistics updated in place) and step ``t``
    of the LIF baseline (SPEC E7, no quantizer) as one node and one forward kernel
    (:func:`hdlif_ref.kernels.bn_neuron.bn_lif_graph_step`; docs/performance.md, "Graph steps"), as
    :class:`BNHDLIFStep` is for HD-LIF.

    The nodes :class:`~.norm.BatchNorm` -> :class:`LIFStep` give the same numbers bit for bit: the forward does their
    per-element operations in their order and keeps what :class:`LIFStep` keeps (the charges ``m``, ``u_{t-1}``),
    and the backward is their two backward kernels, called as they call them, on the same arrays. Raises
    :class:`NonFiniteStep` (nothing recorded, no statistics updated) where a normalized current is not finite (the
    plain path's ``check_finite`` names it).
    """

    name = "bn_lif_step"

    @staticmethod
    def forward(ctx, x, *rest, has_weight, has_bias, t, soft, surrogate, gamma, running_mean, running_var, momentum,
                eps):
        a = _BNStepInputs("bn_lif_step", x, rest, has_weight, has_bias, t)
        out, u_new, mean, var, bad, m = _bn_neuron.bn_lif_graph_step(a.x3, a.weight, a.bias, eps, a.u3, a.lam_c,
                                                                     a.theta_c, bool(soft))
        _commit_bn(a, bad, mean, var, running_mean, running_var, momentum)
        rows, F, shape = a.rows, a.F, a.shape
        ctx.save_for_backward(a.x3, mean, 1.0 / np.sqrt(var + eps), a.weight, m.reshape(1, rows, F),
                              a.u3.reshape(rows, F), a.lam_t, a.theta_t)
        ctx.meta = (t, shape, rest[a.i + 1].shape, rest[a.i + 2].shape, has_weight, has_bias, soft, surrogate,
                    gamma)
        return out.reshape(shape), u_new.reshape(shape)

    @staticmethod
    def backward(ctx, grads):
        g_s, g_u = grads
        x3, mean, invstd, weight, m, u0, lam_t, theta_t = ctx.saved_tensors
        t, shape, shape_lam, shape_theta, has_weight, has_bias, soft, surrogate, gamma = ctx.meta
        needs = ctx.needs_input_grad  # x, [weight], [bias], u_prev, lam, theta
        i = 1 + has_weight + has_bias  # u_prev's index
        # LIFStep.backward
        gs, gu0 = _c(g_s, m.dtype, m.shape), None
        if _stands_alone(g_u, needs[i]):
            gI, glam, gtheta = _lif.lif_backward_online(gs, m, u0, lam_t, theta_t, soft, surrogate, gamma,
                                                        needs[i + 1])
        else:
            gI, gu0, glam, gtheta = _lif.lif_backward_stbp(gs, _c(g_u, m.dtype, u0.shape), m, u0, lam_t, theta_t,
                                                           soft, surrogate, gamma, needs[i + 1])
        del gs  # as the two nodes free it between their backward calls (peak memory)
        gu0 = gu0.reshape(shape) if needs[i] else None
        grads = _bn_grads(gI, x3, mean, invstd, weight, needs, has_weight, has_bias, shape)  # BatchNorm.backward
        grads += [gu0, _full_grad(glam, t, shape_lam), _full_grad(gtheta, t, shape_theta)]
        return tuple(grads)


# ---------------------------------------------------------------------------- Parallel HD-LIF
class ParallelHDLIFSeq(Function):
    """``s* = parallel_hdlif_seq(I, theta)``: SPEC E8 on all steps (no state: STBP = online)."""

    name = "parallel_hdlif_seq"

    @staticmethod
    def forward(ctx, I, theta):
        dtype = _dtype(I, theta)
        T = I.shape[0]
        rows, F = rows_of(I.shape[1:], _per_channel(theta))
        theta2, = params_tc(dtype, theta)
        s, mask = _parallel.parallel_hdlif_forward(_c(I, dtype, (T, rows, F)), theta2)
        ctx.save_for_backward(mask, theta2)
        ctx.shapes = (I.shape, theta.shape)
        return s.reshape(I.shape)

    @staticmethod
    def backward(ctx, g):
        mask, theta2 = ctx.saved_tensors
        shape_I, shape_theta = ctx.shapes
        gI, gtheta = _parallel.parallel_hdlif_backward(_c(g, theta2.dtype, mask.shape), mask, theta2)
        return gI.reshape(shape_I), _grad_as(gtheta, shape_theta)


class ParallelHDLIFStep(Function):
    """``s*_t = parallel_hdlif_step(I_t, theta, t=t)``: SPEC E8 at step ``t``."""

    name = "parallel_hdlif_step"

    @staticmethod
    def forward(ctx, I_t, theta, t=0):
        dtype = _dtype(I_t, theta)
        rows, F = rows_of(I_t.shape, _per_channel(theta))
        theta_t = params_tc(dtype, theta)[0][t:t + 1]
        s, mask = _parallel.parallel_hdlif_forward(_c(I_t, dtype, (1, rows, F)), theta_t)
        ctx.save_for_backward(mask, theta_t)
        ctx.t, ctx.shapes = t, (I_t.shape, theta.shape)
        return s.reshape(I_t.shape)

    @staticmethod
    def backward(ctx, g):
        mask, theta_t = ctx.saved_tensors
        shape, shape_theta = ctx.shapes
        gI, gtheta = _parallel.parallel_hdlif_backward(_c(g, theta_t.dtype, mask.shape), mask, theta_t)
        return gI.reshape(shape), _full_grad(gtheta, ctx.t, shape_theta)


# ---------------------------------------------------------------------------- Mem-BN HD-LIF
def _membn_forward(ctx, I4, u0, params, shapes, t0, running_mean, running_var, training, momentum, bn_eps):
    """Shared forward of the Mem-BN ops on ``I4: [T', N, C, S]`` with parameter rows ``t0..t0+T'-1``."""
    dtype = I4.dtype
    Tp, N, C, S = I4.shape
    rows = slice(t0, t0 + Tp)
    lam, theta, alpha, beta, w, b = (p[rows] for p in params)
    if training:
        mean = var = np.empty((Tp, C), dtype=dtype)  # ignored: the kernel computes batch statistics
    else:
        mean = np.ascontiguousarray(running_mean[rows], dtype=dtype)
        var = np.ascontiguousarray(running_var[rows], dtype=dtype)
    s, u, m, mask, mean, var, invstd = _membn.membn_hdlif_forward(
        I4, u0, lam, theta, alpha, beta, w, b, mean, var, training, bn_eps)
    if training and running_mean is not None:
        # PyTorch's convention: running_var follows the unbiased batch variance
        n = N * S
        unbiased = var * (n / (n - 1)) if n > 1 else var
        running_mean[rows] = (1 - momentum) * running_mean[rows] + momentum * mean
        running_var[rows] = (1 - momentum) * running_var[rows] + momentum * unbiased
    ctx.save_for_backward(m, u, mask, u0, lam, theta, alpha, beta, w, b, mean, invstd)
    ctx.shapes, ctx.t0, ctx.training = shapes, t0, training
    return s, u


def _membn_backward(ctx, gs, gu_last, online):
    m, u, mask, u0, lam, theta, alpha, beta, w, b, mean, invstd = ctx.saved_tensors
    gI, gu0, *gparams = _membn.membn_hdlif_backward(
        _c(gs, m.dtype, m.shape), _c(gu_last, m.dtype, u0.shape), m, u, mask, u0, lam, theta, alpha,
        beta, w, b, mean, invstd, ctx.training, online)
    return gI, gu0, gparams


class MemBNHDLIFSeq(Function):
    """``s* = membn_hdlif_seq(I, lam, theta, alpha, beta, bn_weight, bn_bias, ...)`` (SPEC E9)."""

    name = "membn_hdlif_seq"

    @staticmethod
    def forward(ctx, I, lam, theta, alpha, beta, bn_weight, bn_bias, running_mean=None, running_var=None,
                training=True, momentum=0.1, bn_eps=1e-5, gradient="stbp"):
        dtype = _dtype(I, lam, theta, alpha, beta, bn_weight, bn_bias)
        T, N, C = I.shape[:3]
        I4 = _c(I, dtype, (T, N, C, math.prod(I.shape[3:])))
        u0 = np.zeros(I4.shape[1:], dtype=dtype)
        params = params_tc(dtype, lam, theta, alpha, beta, bn_weight, bn_bias)
        shapes = (I.shape,) + tuple(p.shape for p in (lam, theta, alpha, beta, bn_weight, bn_bias))
        s, _ = _membn_forward(ctx, I4, u0, params, shapes, 0, running_mean, running_var, training,
                              momentum, bn_eps)
        ctx.gradient = gradient
        return s.reshape(I.shape)

    @staticmethod
    def backward(ctx, g):
        gI, _, gparams = _membn_backward(ctx, g, np.zeros(ctx.saved_tensors[3].shape, g.dtype),
                                         ctx.gradient == "online")
        shapes = ctx.shapes
        return (gI.reshape(shapes[0]),) + tuple(_grad_as(gp, shape) for gp, shape in zip(gparams, shapes[1:]))


class MemBNHDLIFStep(Function):
    """``(s*_t, u_t) = membn_hdlif_step(I_t, u_prev, lam, theta, alpha, beta, bn_weight, bn_bias, t=, ...)``."""

    name = "membn_hdlif_step"

    @staticmethod
    def forward(ctx, I_t, u_prev, lam, theta, alpha, beta, bn_weight, bn_bias, t=0, running_mean=None,
                running_var=None, training=True, momentum=0.1, bn_eps=1e-5):
        dtype = _dtype(I_t, u_prev, lam, theta, alpha, beta, bn_weight, bn_bias)
        N, C = I_t.shape[:2]
        I4 = _c(I_t, dtype, (1, N, C, math.prod(I_t.shape[2:])))
        u0 = _c(u_prev, dtype, I4.shape[1:])
        params = params_tc(dtype, lam, theta, alpha, beta, bn_weight, bn_bias)
        shapes = (I_t.shape,) + tuple(p.shape for p in (lam, theta, alpha, beta, bn_weight, bn_bias))
        s, u = _membn_forward(ctx, I4, u0, params, shapes, t, running_mean, running_var, training,
                              momentum, bn_eps)
        return s.reshape(I_t.shape), u.reshape(I_t.shape)

    @staticmethod
    def backward(ctx, grads):
        g_s, g_u = grads
        gI, gu0, gparams = _membn_backward(ctx, g_s, g_u, False)
        shapes = ctx.shapes
        return ((gI.reshape(shapes[0]), gu0.reshape(shapes[0]) if ctx.needs_input_grad[1] else None)
                + tuple(_full_grad(gp, ctx.t0, shape) for gp, shape in zip(gparams, shapes[1:])))
