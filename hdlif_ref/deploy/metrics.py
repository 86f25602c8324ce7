"""Deployment counters: parameter memory (SPEC E18), SOPs, MACs and NOPs (E19), energy (E20).

Conventions (docs/metrics.md):

* **Memory (E18).** Every trainable parameter counts at 32 bits, except the weights
  of ``binary``/``ternary`` synapses, which count at 1/2 bits plus one float32 scale
  ``a_c`` per output channel. Batch-norm running statistics are not counted: at
  deployment they fold into the per-channel scale and bias that the BN affine
  parameters (counted) already stand for.
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

import functools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..autograd import Tensor, no_grad
from ..layers.module import Module
from ..layers.synapses import Conv2d, Linear
from ..neurons import HDLIF, LIF, MemBNHDLIF, ParallelHDLIF

WEIGHT_BITS = {"fp32": 32, "binary": 1, "ternary": 2}

#: NOPs per neuron per time step, (MUL, ADD), SPEC E19.
NOP_COST = {HDLIF: (1, 2), LIF: (1, 2), MemBNHDLIF: (1, 2), ParallelHDLIF: (0, 1)}

#: SPEC E20 default (45 nm) energies in picojoules.
ENERGY_45NM = {"sop": 0.9, "mac": 4.6, "mul": 3.7, "add": 0.9}

#: Bit-width-aware table (Horowitz, ISSCC 2014): int8 add 0.03, int32 add 0.1, fp32 add 0.9, fp32 mul 3.7 pJ.
HOROWITZ = {"int8_add": 0.03, "int32_add": 0.1, "fp32_add": 0.9, "fp32_mul": 3.7}


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
@functools.lru_cache(maxsize=256)
def conv_fanout_1d(size: int, kernel: int, stride: int, padding: int) -> np.ndarray:
    """For each input position along one axis, how many (output position, kernel tap) pairs read it."""
    out = (size + 2 * padding - kernel) // stride + 1
    counts = np.zeros(size, dtype=np.int64)
    for o in range(out):
        for k in range(kernel):
            i = o * stride - padding + k
            if 0 <= i < size:
                counts[i] += 1
    counts.flags.writeable = False  # cached: shared between calls
    return counts


def conv_fanout(conv: Conv2d, height: int, width: int) -> np.ndarray:
    """``[H, W]`` map: synapses each input element of one channel drives (times ``C_out / groups``)."""
    fh = conv_fanout_1d(height, conv.kernel_size[0], conv.stride[0], conv.padding[0])
    fw = conv_fanout_1d(width, conv.kernel_size[1], conv.stride[1], conv.padding[1])
    return np.outer(fh, fw) * (conv.out_channels // conv.groups)


def synapse_ops(layer: Module, x: np.ndarray, step_mode: str) -> tuple[int, int]:
    """``(used pairs, all pairs)`` of one synapse call on input ``x`` (summed over batch and steps)."""
    if step_mode == "m":
        x = x.reshape((-1,) + x.shape[2:])
    nonzero = x != 0
    if isinstance(layer, Conv2d):
        fan = conv_fanout(layer, x.shape[2], x.shape[3])
        used = int(np.einsum("nchw,hw->", nonzero, fan, dtype=np.int64))
        every = int(fan.sum()) * x.shape[0] * x.shape[1]
        return used, every
    fan = layer.out_features
    return int(nonzero.sum()) * fan, x.size * fan


# --------------------------------------------------------------------------- counting a forward pass
@dataclass
class OpCounts:
    """SOPs, MACs and NOPs of a forward pass, per sample, summed over time steps."""

    sops: float = 0.0
    macs: float = 0.0
    nop_mul: float = 0.0
    nop_add: float = 0.0
    sops_by_bits: dict[int, float] = field(default_factory=dict)
    layers: list[tuple[str, str, float]] = field(default_factory=list)  # (name, kind, count)

    @property
    def nops(self) -> float:
        return self.nop_mul + self.nop_add


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
        if kind == "sop":
            counts.sops += value
            bits = int(getattr(layer, "input_bits", 32))
            counts.sops_by_bits[bits] = counts.sops_by_bits.get(bits, 0.0) + value
        elif kind == "mac":
            counts.macs += value
        else:
            mul, add = NOP_COST[type(layer)]
            counts.nop_mul += mul * value
            counts.nop_add += add * value
    return counts


def count_nops(model: Module, input_shape: tuple[int, ...], T: int | None = None) -> OpCounts:
    """NOPs (E19) per sample for one input of shape ``[C, H, W]``, from the layer shapes (a zero input)."""
    counts = count_ops(model, np.zeros((1,) + tuple(input_shape), dtype=np.float32), T)
    return OpCounts(nop_mul=counts.nop_mul, nop_add=counts.nop_add,
                    layers=[row for row in counts.layers if row[1] == "nop"])


# --------------------------------------------------------------------------- energy (E20)
def energy(counts: OpCounts, table: str = "45nm") -> float:
    """Energy in joules (SPEC E20). ``table="45nm"`` (default) or ``"bitwidth"``.

    Bit-width-aware table (an option, DC): a SOP whose spikes have at most 8 bits is an
    int32 accumulation (0.1 pJ; ternary/binary weights make the product a sign flip of
    a small integer), wider spikes an fp32 add (0.9 pJ); MACs are fp32 mul + add; neuron
    MULs and ADDs are fp32.
    """
    if table == "45nm":
        pj = (counts.sops * ENERGY_45NM["sop"] + counts.macs * ENERGY_45NM["mac"]
              + counts.nop_mul * ENERGY_45NM["mul"] + counts.nop_add * ENERGY_45NM["add"])
    elif table == "bitwidth":
        sop_pj = sum(n * (HOROWITZ["int32_add"] if bits <= 8 else HOROWITZ["fp32_add"])
                     for bits, n in counts.sops_by_bits.items())
        pj = (sop_pj + counts.macs * (HOROWITZ["fp32_mul"] + HOROWITZ["fp32_add"])
              + counts.nop_mul * HOROWITZ["fp32_mul"] + counts.nop_add * HOROWITZ["fp32_add"])
    else:
        raise ValueError(f"energy: table={table!r}; allowed: '45nm', 'bitwidth'")
    return pj * 1e-12


def energy_45nm(sops: float = 0.0, macs: float = 0.0, nop_mul: float = 0.0, nop_add: float = 0.0) -> float:
    """SPEC E20 with the default table, in joules: ``SOPs 0.9 + MACs 4.6 + MUL 3.7 + ADD 0.9`` pJ."""
    return energy(OpCounts(sops=sops, macs=macs, nop_mul=nop_mul, nop_add=nop_add))
