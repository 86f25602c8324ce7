"""Deployment counters: parameter memory (SPEC E18), SOPs, MACs and NOPs (E19), energy (E20).

Conventions (docs/metrics.md):

* **Memory (E18).** Every trainable parameter counts at 32 bits, except the weights
  of ``binary``/``ternary`` synapses, which count at 1/2 bits plus one float32 scale
  ``a_c`` per output channel. A batch norm with shared running statistics counts its
  affine parameters (at deployment it folds into a per-channel scale and bias of that
  size); one with per-step statistics (SPEC E16 DC, the builders' default) counts the
  per-step, per-channel scale and shift that deployment applies: ``2 T C`` float32.
* **SOPs (E19).** For every synapse whose input is spikes, the number of (non-zero
  input element, synapse) pairs actually used, summed over the time steps, per
  sample. A convolution counts each input's real fan-out (fewer at the borders,
  stride and padding included). Every synapse counts, also those whose ternary
  code is 0 (the structure, not the values, decides). A multi-bit spike counts as
  one SOP; SOPs are also reported by the bit width of the spikes.
* **MACs (E19).** Synapses with analog input (the first layer): every real
  multiply-accumulate (border fan-out as above), per sample, summed over steps.
* **NOPs (E19).** Per neuron per step: HD-LIF, LIF and (re-parameterized) Mem-BN
  ``1 MUL + 2 ADD``; Parallel HD-LIF ``1 ADD``. Counted from the layer shapes.
* **Energy (E20).** ``SOPs 0.9 + MACs 4.6 + NOP_MUL 3.7 + NOP_ADD 0.9`` pJ (45 nm), or
  the bit-width-aware table (Horowitz, ISSCC 2014).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..autograd import Tensor, no_grad
from ..module import Module
from ..layers.norm import _BatchNorm
from ..layers.synapses import Conv2d, Linear
from ..neurons import HDLIF, LIF, MemBNHDLIF, ParallelHDLIF
from .counts import (ENERGY_45NM, HOROWITZ, NOP_PER_NEURON, OpCounts, conv_fanout_1d,  # noqa: F401
                     energy, energy_45nm, synapse_pairs)

WEIGHT_BITS = {"fp32": 32, "binary": 1, "ternary": 2}

#: Neuron module -> its kind in :data:`~.counts.NOP_PER_NEURON`.
NEURON_KINDS = {HDLIF: "hdlif", LIF: "lif", MemBNHDLIF: "membn", ParallelHDLIF: "parallel"}

#: NOPs per neuron per time step, (MUL, ADD), SPEC E19, by module class.
NOP_COST = {cls: NOP_PER_NEURON[kind] for cls, kind in NEURON_KINDS.items()}


# --------------------------------------------------------------------------- memory (E18)
def parameter_memory(model: Module) -> dict[str, Any]:
    """SPEC E18: ``bytes = sum count * bits / 8`` with the conventions above.

    Returns ``{"bytes": total, "megabytes": total / 1e6, "layers": [(name, params, bits, bytes), ...]}``;
    ``bits`` is the width of the layer's weights (32 for layers without compressed weights).
    """
    rows, total = [], 0.0
    for name, module in model.named_modules():
        own = list(module._parameters.items())
        if not own:
            continue
        mode = getattr(module, "weight_mode", "fp32")
        bits, count, layer_bytes = 32, 0, 0.0
        if isinstance(module, _BatchNorm) and module.per_step:  # SPEC E16 DC: [T, C] scale and shift
            count = 2 * module.T * module.num_features
            rows.append((name or type(module).__name__, count, 32, count * 4.0))
            total += count * 4.0
            continue
        for pname, p in own:
            count += p.size
            if pname == "weight" and mode != "fp32":
                bits = WEIGHT_BITS[mode]
                layer_bytes += p.size * bits / 8 + p.shape[0] * 4  # codes + float32 scale a_c per channel
            else:
                layer_bytes += p.size * 4
        rows.append((name or type(module).__name__, count, bits, layer_bytes))
        total += layer_bytes
    return {"bytes": total, "megabytes": total / 1e6, "layers": rows}


# --------------------------------------------------------------------------- fan-out (E19)
def conv_settings(conv: Conv2d) -> dict:
    """A convolution's geometry in the form :func:`~.counts.synapse_pairs` takes."""
    return dict(kernel=conv.kernel_size, stride=conv.stride, padding=conv.padding, groups=conv.groups)


def synapse_ops(layer: Module, x: np.ndarray, step_mode: str) -> tuple[int, int]:
    """``(used pairs, all pairs)`` of one synapse call on input ``x`` (summed over batch and steps)."""
    if step_mode == "m":
        x = x.reshape((-1,) + x.shape[2:])
    if isinstance(layer, Conv2d):
        return synapse_pairs(x, layer.out_channels, conv_settings(layer))
    return synapse_pairs(x.reshape(-1, x.shape[-1]), layer.out_features)


# --------------------------------------------------------------------------- counting a forward pass
def count_ops(model: Module, x: np.ndarray, T: int | None = None) -> OpCounts:
    """Run ``model`` on ``x`` in eval mode, single-step, and count SOPs/MACs (measured) and NOPs.

    ``x``: a static batch ``[N, C, H, W]`` (repeated at every step, direct encoding) or
    event frames ``[T, N, C, H, W]``. The model's state and mode are restored after.
    """
    T = int(T if T is not None else getattr(model, "T", 1))
    x = np.asarray(x)
    per_step = (lambda t: x[t]) if x.ndim == 5 else (lambda t: x)
    batch = x.shape[1] if x.ndim == 5 else x.shape[0]
    counts = OpCounts()
    totals: dict[str, list] = {}
    names = {id(m): n for n, m in model.named_modules()}
    handles = []

    def on_synapse(layer, args, out):
        used, every = synapse_ops(layer, args[0].data, layer.step_mode)
        row = totals.setdefault(names[id(layer)], ["sop" if layer.input_is_spikes else "mac", 0.0, layer])
        row[1] += used if layer.input_is_spikes else every

    def on_neuron(layer, args, out):
        row = totals.setdefault(names[id(layer)], ["nop", 0.0, layer])
        row[1] += out.size

    for m in model.modules():
        if isinstance(m, (Conv2d, Linear)):
            handles.append(m.register_forward_hook(on_synapse))
        elif type(m) in NOP_COST:
            handles.append(m.register_forward_hook(on_neuron))
    was_training, mode = model.training, model.step_mode
    try:
        model.eval().set_step_mode("s").reset_state()
        with no_grad():
            for t in range(T):
                model(Tensor(np.ascontiguousarray(per_step(t), dtype=np.float32)))
    finally:
        for h in handles:
            h.remove()
        model.reset_state().train(was_training).set_step_mode(mode)
    for name, (kind, value, layer) in totals.items():
        value /= batch
        counts.layers.append((name, kind, value))
        if kind == "nop":
            counts.add_neurons(NEURON_KINDS[type(layer)], value)
        else:
            counts.add_synapse(value, value, kind == "sop", int(getattr(layer, "input_bits", 32)))
    return counts


def count_nops(model: Module, input_shape: tuple[int, ...], T: int | None = None) -> OpCounts:
    """NOPs (E19) per sample for one input of shape ``[C, H, W]``, from the layer shapes (a zero input)."""
    counts = count_ops(model, np.zeros((1,) + tuple(input_shape), dtype=np.float32), T)
    return OpCounts(nop_mul=counts.nop_mul, nop_add=counts.nop_add,
                    layers=[row for row in counts.layers if row[1] == "nop"])
