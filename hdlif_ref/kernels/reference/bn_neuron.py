"""NumPy twin of :mod:`hdlif_ref.kernels.bn_neuron`: the plain path's twins called one after the other."""
from __future__ import annotations

import numpy as np

from . import neurons, norm, spike_quantize

HDLIF, PARALLEL, LIF = 0, 1, 2


def bn_neuron_step(x, training, weight, bias, eps, running_mean, running_var, u_prev, lam, theta, kind, step, qmax,
                   soft=False):
    """Batch norm, one neuron step, the quantizer, on ``x: [N, C, L]``.

    * ``training``: normalize with the batch statistics (returned as float64 ``mean``, biased
      ``var``, ``[C]``); else with ``running_mean``, ``running_var`` (any float dtype, ``[C]``);
      ``weight``, ``bias``: ``[C]`` in ``x``'s dtype, or ``None``; ``eps`` a float;
    * ``kind`` 0 (HD-LIF, SPEC E1-E2: needs ``u_prev: [N, C, L]``, ``u_{t-1}``), 1 (Parallel
      HD-LIF, E8: ``u_prev`` ignored) or 2 (LIF, E7: needs ``u_prev``; ``soft`` chooses the soft
      reset, else the hard one); ``lam``, ``theta``: this step's values per channel, ``[C]``;
    * ``qmax`` (``2^n - 1``) and ``step``: the E13 quantizer, or ``qmax=None`` for none.

    Returns ``(out, u_new or None, mean, var, nonfinite)``: the emitted spikes ``[N, C, L]``,
    the new state (HD-LIF, LIF), the statistics used in training (zeros in evaluation) and the
    number of values whose normalized current is not finite or whose unquantized spike is (an
    HD-LIF surplus ``m - theta`` can overflow to ``+inf``).
    """
    return _steps(x, training, weight, bias, eps, running_mean, running_var, u_prev, lam, theta, kind, step, qmax,
                  soft)[:5]


def bn_hdlif_graph_step(x, weight, bias, eps, u_prev, lam, theta, step, qmax):
    """:func:`bn_neuron_step` in training with an HD-LIF neuron, returning also what a recorded step's backward
    needs: ``(out, u_new, mean, var, nonfinite, s_star, mask)``, the unquantized spikes ``s*`` (the quantizer's
    input; ``out`` itself without a quantizer) and the firing mask ``H(m - theta)`` (bool), ``[N, C, L]``."""
    return _steps(x, True, weight, bias, eps, None, None, u_prev, lam, theta, HDLIF, step, qmax, False)


def bn_lif_graph_step(x, weight, bias, eps, u_prev, lam, theta, soft):
    """:func:`bn_neuron_step` in training with a LIF neuron and no quantizer, returning also what a recorded step's
    backward needs: ``(out, u_new, mean, var, nonfinite, m)``, the charges ``m = lam u_prev + I`` (SPEC E7),
    ``[N, C, L]``."""
    out, u_new, mean, var, nonfinite, _, charge = _steps(x, True, weight, bias, eps, None, None, u_prev, lam, theta,
                                                          LIF, 1, None, soft)
    return out, u_new, mean, var, nonfinite, charge


def _steps(x, training, weight, bias, eps, running_mean, running_var, u_prev, lam, theta, kind, step, qmax, soft):
    with np.errstate(all="ignore"):  # the non-finite values the kernel counts (the caller acts on them): no warnings
        return _plain_steps(x, training, weight, bias, eps, running_mean, running_var, u_prev, lam, theta, kind,
                            step, qmax, soft)


def _plain_steps(x, training, weight, bias, eps, running_mean, running_var, u_prev, lam, theta, kind, step, qmax,
                 soft):
    N, C, L = x.shape
    if training:
        y, mean, var = norm.batch_norm_train_forward(x, weight, bias, eps)
    else:
        y = norm.batch_norm_eval_forward(x, running_mean.astype(np.float64),
                                         1.0 / np.sqrt(running_var.astype(np.float64) + eps), weight, bias)
        mean, var = np.zeros(C), np.zeros(C)
    I = y.reshape(1, N, C * L)
    kept = None  # what a recorded step's backward reads: HD-LIF's firing mask, LIF's charges
    if kind == HDLIF:
        s, u_new, kept = neurons.hdlif_forward(I, u_prev.reshape(N, C * L), lam[None], theta[None])
        u_new = u_new.reshape(N, C, L)
    elif kind == LIF:
        s, u_new, kept = neurons.lif_forward(I, u_prev.reshape(N, C * L), lam[None], theta[None], soft)
        u_new = u_new.reshape(N, C, L)
    else:
        s, _ = neurons.parallel_hdlif_forward(I, theta[None])
        u_new = None
    nonfinite = int((~np.isfinite(y.reshape(I.shape)) | ~np.isfinite(s)).sum())
    s_star = s.reshape(N, C, L)
    if qmax is not None:
        dt = x.dtype.type
        s = spike_quantize.spike_quantize_forward(s, dt(step), dt(qmax))
    return s.reshape(N, C, L), u_new, mean, var, nonfinite, s_star, (None if kept is None else kept.reshape(N, C, L))
