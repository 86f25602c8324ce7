"""A batch norm and the neuron after it in one kernel, when no graph is recorded (docs/performance.md,
"Graph-free steps"), and, for a recorded training step of an HD-LIF or LIF neuron, in one graph node ("Graph
steps").

Online steps outside the drawn set ``S`` (SPEC E16) and evaluation run under ``no_grad``:
nobody needs the normalized current, the unquantized spike or the firing mask. For the
pattern every builder uses, ``BatchNorm2d`` directly followed by an :class:`HDLIF`,
:class:`ParallelHDLIF` or :class:`LIF` (with or without the E13 quantizer),
:func:`bn_then_neuron` computes both layers with
:func:`hdlif_ref.kernels.bn_neuron.bn_neuron_step` and returns ``None`` whenever the plain path
must run instead: a graph is recorded (but for the one-node step below), a hook watches either
layer, dtypes differ, a shape or a parameter is not what the step functions accept (the plain path
then raises its own error), or a normalized current is not finite (the plain path's
``check_finite`` names it). The result, the neuron's state, its firing counts and the batch
norm's running statistics and step counter are what the plain path leaves, bit for bit
(tested against it). ``ENABLED = False`` switches it off.

With a graph (:func:`_graph_step`): a training ``BatchNorm2d`` followed by an :class:`HDLIF` step (step
mode ``"s"``) becomes one :class:`~hdlif_ref.autograd.ops.neuron.BNHDLIFStep` node instead of three
(batch norm, HD-LIF step, quantizer), computed by the same kernel, which also keeps the unquantized
spikes and the firing mask for the backward; the backward is the three nodes' kernels in a row. A
:class:`LIF` step without a quantizer likewise becomes one :class:`~hdlif_ref.autograd.ops.neuron.BNLIFStep`
node instead of two (batch norm, LIF step), which keeps the charges ``m`` its surrogate gradient reads. The
spikes, the state, the statistics and every gradient are the plain path's, bit for bit (tested);
a quantized LIF, Parallel HD-LIF, evaluation-mode batch norm and sequences keep the plain path with a graph.
``GRAPH = False`` switches this part off.
"""
from __future__ import annotations

import math

import numpy as np

from ..autograd import Tensor, is_grad_enabled
from ..autograd.ops._args import mark_finite
from ..autograd.ops.norm import check_affine, check_running, update_running_stats
from ..autograd.ops.neuron import BNHDLIFStep, BNLIFStep, NonFiniteStep
from ..kernels.bn_neuron import HDLIF as _HDLIF_KIND
from ..kernels.bn_neuron import LIF as _LIF_KIND
from ..kernels.bn_neuron import PARALLEL as _PARALLEL_KIND
from ..kernels.bn_neuron import bn_neuron_step
from ..kernels.finite import count_nonfinite, count_nonzero
from ..kernels.surrogates import resolve_gamma, surrogate_code
from ..layers.norm import BatchNorm2d
from ._checks import RESETS, check_choice, check_param
from .quantizer import top_level
from .records import NeuronState

#: False: always the plain path (the reference; tests and A/B measurements flip it).
ENABLED = True
#: False: recorded steps take the plain path (three nodes) even where :func:`_graph_step` applies.
GRAPH = True


def _step_values(p: np.ndarray, t: int, C: int, dtype) -> np.ndarray | None:
    """Row ``t`` of a ``[T]`` / ``[T, C]`` neuron parameter as ``[C]`` of ``dtype``, or None if it does not fit or
    any value of the parameter, at any step, is not finite: the plain path checks them all at every step
    (``check_param``), and then raises its own error."""
    if count_nonfinite(p):
        return None
    row = p[t]
    if row.ndim == 0:
        return np.full(C, row, dtype=dtype)
    if row.shape != (C,):
        return None
    return np.ascontiguousarray(row, dtype=dtype)


def bn_then_neuron(bn, neuron, x: Tensor, kinds: dict) -> Tensor | None:
    """``neuron(bn(x))`` in one pass, or ``None`` when the plain path must run (see the module docstring).

    ``kinds`` maps the neuron classes that can be fused to their kernel kind (the neuron
    package passes ``{HDLIF: 0, ParallelHDLIF: 1, LIF: 2}``).
    """
    if not ENABLED or type(bn) is not BatchNorm2d or type(neuron) not in kinds:
        return None
    graph = is_grad_enabled()
    if graph and not (GRAPH and kinds[type(neuron)] in (_HDLIF_KIND, _LIF_KIND) and bn.training
                      and neuron.step_mode == "s"):
        return None
    quantizer = neuron.quantizer
    if bn._forward_hooks or neuron._forward_hooks or (quantizer is not None and quantizer._forward_hooks):
        return None
    if bn.step_mode != neuron.step_mode or not isinstance(x, Tensor):
        return None
    dtype = x.dtype
    params = [neuron.theta] + ([neuron.lam] if kinds[type(neuron)] != _PARALLEL_KIND else [])
    params += [p for p in (bn.weight, bn.bias) if p is not None]
    if quantizer is not None:
        params.append(quantizer.step)
    if any(p.data.dtype != dtype for p in params):
        return None
    # the batch norm's input checks but the values: any failure lets the plain path raise its own errors, in its
    # order. The values are the kernel's: a non-finite input makes its normalized current non-finite (NaN or inf
    # minus the mean, or times the scale), which the kernel counts, and the plain path then runs and names it
    try:
        bn.check(x, values=False)
        check_affine("batch_norm", x.shape, bn.num_features, bn.weight, bn.bias, bn.momentum, bn.eps)
    except (TypeError, ValueError):
        return None
    if graph:
        return _graph_step(bn, neuron, x, kinds[type(neuron)])
    if neuron.step_mode == "s":
        return _step(bn, neuron, x, kinds[type(neuron)])
    return _sequence(bn, neuron, x, kinds[type(neuron)])


def _quantizer_args(neuron):
    q = neuron.quantizer
    if q is None:
        return 1.0, None
    step = float(q.step.data.reshape(()))
    if not (math.isfinite(step) and step > 0):
        return None  # spike_quantize refuses it: let the plain path say so
    return step, q.qmax


def _running_stats(bn, t_bn: int, C: int):
    """The batch norm's running statistics for step ``t_bn`` (raises as the plain path would past ``T``), or
    ``(None, None)`` where ``batch_norm`` would refuse them (dtype, shape, read-only in training, one without the
    other): the plain path then raises, before it changes anything."""
    mean_run, var_run = bn._stats_for_step(t_bn)
    if (mean_run is None) != (var_run is None):
        return None, None  # batch_norm refuses one without the other
    try:
        for name, value in (("running_mean", mean_run), ("running_var", var_run)):
            check_running("batch_norm", name, value, (C,), bn.training)
    except (TypeError, ValueError):
        return None, None
    return mean_run, var_run


def _run(bn, neuron, kind, x_t: np.ndarray, t_bn: int, t: int, u_prev: np.ndarray | None):
    """Kernel call on ``x_t: [N, C, H, W]``, the batch norm's step ``t_bn`` (its row of per-step statistics)
    and the neuron's step ``t``; ``None`` if the plain path must run. No side effects."""
    N, C = x_t.shape[:2]
    x3 = np.ascontiguousarray(x_t).reshape(N, C, -1)
    count = x3.shape[0] * x3.shape[2]
    if bn.training and count < 2:
        return None
    if t >= neuron.T:
        return None
    theta = _step_values(neuron.theta.data, t, C, x3.dtype)
    lam = _step_values(neuron.lam.data, t, C, x3.dtype) if kind != _PARALLEL_KIND else theta
    q = _quantizer_args(neuron)
    if theta is None or lam is None or q is None:
        return None  # the plain path raises its own error (a non-finite threshold or decay, say)
    if kind != _PARALLEL_KIND:
        u3 = np.zeros_like(x3) if u_prev is None else np.ascontiguousarray(u_prev).reshape(x3.shape)
    else:
        u3 = None
    soft = kind == _LIF_KIND and neuron.reset_mode == "soft"
    mean_run, var_run = _running_stats(bn, t_bn, C)
    if mean_run is None:
        return None
    weight = None if bn.weight is None else bn.weight.data
    bias = None if bn.bias is None else bn.bias.data
    out, u_new, mean, var, bad = bn_neuron_step(x3, bn.training, weight, bias, bn.eps, mean_run, var_run, u3,
                                                lam, theta, kind, q[0], q[1], soft)
    if bad:
        return None
    return out, u_new, mean, var, count, mean_run, var_run, _spike_bound(kind, q, x3.dtype)


def _spike_bound(kind, q: tuple, dtype) -> float | None:
    """A bound on every spike the kernel emits with the quantizer arguments ``q`` (the step's thresholds
    are finite: :func:`_run` checked them), when there is one (``mark_finite``), else ``None``.

    Quantized spikes are ``step k`` with ``0 <= k <= qmax`` when the value quantized is not NaN.
    LIF's is 0 or 1; HD-LIF's surplus ``m - theta`` is taken only when ``m >= theta``, so it is
    ``>= 0`` and, with a finite ``theta``, never NaN (a surplus of ``+inf`` is counted by the kernel,
    and the plain path runs); the parallel neuron's ``z - theta`` likewise (``z`` is finite or the
    plain path runs). Unquantized HD-LIF spikes carry the surplus, which has no bound.
    """
    step, qmax = q
    if qmax is None:
        return 1.0 if kind == _LIF_KIND else None
    return top_level(step, qmax, dtype)


def _marked(y: Tensor, bound: float | None) -> Tensor:
    """The emitted spikes ``y``, recorded finite within ``bound`` unless it is ``None``."""
    if bound is not None:
        mark_finite(y.data, bound)
    return y


def _commit_stats(bn, result) -> None:
    mean, var, count, mean_run, var_run = result[2:7]
    if bn.training and mean_run is not None:
        update_running_stats(mean_run, var_run, mean, var, count, bn.momentum)


def _count_firing(neuron, out: np.ndarray) -> None:
    if neuron.track_firing:
        nonzero, total = neuron.firing_counts
        neuron.firing_counts = (nonzero + count_nonzero(out), total + int(out.size))


def _step(bn, neuron, x: Tensor, kind) -> Tensor | None:
    state = neuron.state
    t = state.t
    if not 0 <= t < neuron.T:
        return None  # SpikingNeuron.forward or the step function raises
    u_prev = None
    if kind != _PARALLEL_KIND and state.u is not None:
        if state.u.shape != x.shape or state.u.dtype != x.dtype:
            return None
        u_prev = state.u.data
    result = _run(bn, neuron, kind, x.data, bn.t, t, u_prev)
    if result is None:
        return None
    out, u_new = result[0], result[1]
    _commit_stats(bn, result)
    bn.t += 1
    neuron._state = NeuronState(None if u_new is None else Tensor(u_new.reshape(x.shape)), t + 1)
    out = out.reshape(x.shape)
    _count_firing(neuron, out)
    return _marked(Tensor(out), result[7])


def _graph_step(bn, neuron, x: Tensor, kind) -> Tensor | None:
    """A recorded training step of ``BatchNorm2d`` -> :class:`HDLIF` (+ quantizer) or :class:`LIF` (no quantizer) as
    one node (:class:`~hdlif_ref.autograd.ops.neuron.BNHDLIFStep`, :class:`~hdlif_ref.autograd.ops.neuron.BNLIFStep`),
    or ``None`` where the plain path must run: it then raises its own errors, or computes what this would have (the
    same bits, tested against it)."""
    state = neuron.state
    t = state.t
    N, C = x.shape[:2]
    if not 0 <= t < neuron.T or N * (x.size // max(N * C, 1)) < 2:
        return None  # SpikingNeuron.forward, the step function or batch_norm raises
    quantizer = neuron.quantizer
    if kind == _LIF_KIND and quantizer is not None:
        return None  # a quantized LIF keeps the plain nodes
    if state.u is None:
        u_prev = np.zeros(x.shape, dtype=x.dtype)  # SPEC E1, E7: u_0 = 0
    elif state.u.shape == x.shape and state.u.dtype == x.dtype:
        u_prev = state.u
    else:
        return None
    if isinstance(u_prev, Tensor) and u_prev.requires_grad:
        # a chain of steps kept in the graph (not detached): the plain nodes, so that the backward adds the
        # gradients of a parameter that several steps share in the plain path's order (one node per step
        # changes the order in which the engine reaches them: different last bits)
        return None
    op = "hdlif_step" if kind == _HDLIF_KIND else "lif_step"
    soft = surrogate = gamma = None  # LIF's
    try:  # the plain path's parameter checks (hdlif_step, lif_step), which it runs again to raise
        T = neuron.lam.shape[0]
        for name in ("lam", "theta"):
            check_param(op, name, getattr(neuron, name), T, C, x.shape)
        if kind == _LIF_KIND:
            soft = check_choice(op, "reset", neuron.reset_mode, RESETS) == "soft"
            surrogate, gamma = surrogate_code(op, neuron.surrogate), resolve_gamma(op, neuron.surrogate, neuron.gamma)
    except (TypeError, ValueError, IndexError):
        return None
    if t >= T:
        return None
    q_args = _quantizer_args(neuron)
    if q_args is None:
        return None
    if not any(isinstance(v, Tensor) and v.requires_grad
               for v in (x, bn.weight, bn.bias, u_prev, neuron.lam, neuron.theta)):
        return None  # only the quantizer's step (or nothing) is trained: the plain path records its node alone
    mean_run, var_run = _running_stats(bn, bn.t, C)
    if mean_run is None:
        return None
    inputs = [x] + [p for p in (bn.weight, bn.bias) if p is not None] + [u_prev, neuron.lam, neuron.theta]
    common = dict(has_weight=bn.weight is not None, has_bias=bn.bias is not None, t=t, running_mean=mean_run,
                  running_var=var_run, momentum=bn.momentum, eps=bn.eps)
    try:
        if kind == _HDLIF_KIND:
            if quantizer is not None:
                inputs.append(quantizer.step)
            q, u = BNHDLIFStep.apply(*inputs, has_step=quantizer is not None,
                                     bits=None if quantizer is None else quantizer.bits, **common)
        else:
            q, u = BNLIFStep.apply(*inputs, soft=soft, surrogate=surrogate, gamma=gamma, **common)
    except NonFiniteStep:
        return None
    bn.t += 1
    neuron._state = NeuronState(u, t + 1)
    _count_firing(neuron, q.data)
    return _marked(q, _spike_bound(kind, q_args, q.dtype))  # as spike_quantize and lif_step mark their outputs


def _sequence(bn, neuron, x: Tensor, kind) -> Tensor | None:
    T = x.shape[0]
    if T != neuron.T:
        return None  # the fused sequence op refuses it
    out = np.empty(x.shape, dtype=x.dtype)
    results, u_prev = [], None
    for t in range(T):
        result = _run(bn, neuron, kind, x.data[t], t, t, u_prev)
        if result is None:
            return None
        out[t] = result[0].reshape(x.shape[1:])
        u_prev = result[1]
        results.append((None, None) + result[2:])  # the statistics, for the commit below; not the arrays
    for result in results:  # every step went through: now the side effects, in step order
        _commit_stats(bn, result)
    _count_firing(neuron, out)
    return _marked(Tensor(out), results[-1][7])  # the bound depends on the quantizer only: every step's is the same
