"""Operation counts and energy (SPEC E19, E20) on plain arrays: shared by the counters of a
training-form network (``metrics.py``) and by the frozen runner (``frozen.py``).

NumPy only, so the frozen runner stays free of autograd. Conventions: docs/metrics.md.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

#: NOPs per neuron per time step, (MUL, ADD), SPEC E19, by neuron kind.
NOP_PER_NEURON = {"hdlif": (1, 2), "lif": (1, 2), "membn": (1, 2), "parallel": (0, 1)}

#: SPEC E20 default (45 nm) energies in picojoules.
ENERGY_45NM = {"sop": 0.9, "mac": 4.6, "mul": 3.7, "add": 0.9}

#: Bit-width-aware table (Horowitz, ISSCC 2014): int8 add 0.03, int32 add 0.1, fp32 add 0.9, fp32 mul 3.7 pJ.
HOROWITZ = {"int8_add": 0.03, "int32_add": 0.1, "fp32_add": 0.9, "fp32_mul": 3.7}


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


def conv_fanout(height: int, width: int, kernel: tuple[int, int], stride: tuple[int, int],
                padding: tuple[int, int], out_per_group: int) -> np.ndarray:
    """``[H, W]`` map: synapses each input element of one channel drives (border fan-out exact)."""
    fh = conv_fanout_1d(height, kernel[0], stride[0], padding[0])
    fw = conv_fanout_1d(width, kernel[1], stride[1], padding[1])
    return np.outer(fh, fw) * out_per_group


def synapse_pairs(x: np.ndarray, out_features: int, conv: dict | None = None) -> tuple[int, int]:
    """``(used, all)`` (input element, synapse) pairs of one synapse call, summed over the batch.

    ``x``: ``[N, C, H, W]`` for a convolution (``conv`` holds ``kernel``, ``stride``, ``padding``
    pairs and ``groups``; ``out_features`` is its output channels) or ``[M, F]`` for a linear
    layer. "Used" pairs have a non-zero input (SOPs); "all" pairs count every real
    multiply-accumulate (MACs).
    """
    nonzero = x != 0
    if conv is not None:
        fan = conv_fanout(x.shape[2], x.shape[3], tuple(conv["kernel"]), tuple(conv["stride"]),
                          tuple(conv["padding"]), out_features // conv["groups"])
        used = int(np.einsum("nchw,hw->", nonzero, fan, dtype=np.int64))
        return used, int(fan.sum()) * x.shape[0] * x.shape[1]
    return int(nonzero.sum()) * out_features, x.size * out_features


@dataclass
class OpCounts:
    """SOPs, MACs and NOPs (per sample, summed over time steps, once divided by the batch)."""

    sops: float = 0.0
    macs: float = 0.0
    nop_mul: float = 0.0
    nop_add: float = 0.0
    sops_by_bits: dict[int, float] = field(default_factory=dict)
    layers: list[tuple[str, str, float]] = field(default_factory=list)  # (name, kind, count)

    @property
    def nops(self) -> float:
        return self.nop_mul + self.nop_add

    def add_synapse(self, used: float, every: float, input_is_spikes: bool, bits: int) -> None:
        if input_is_spikes:
            self.sops += used
            self.sops_by_bits[bits] = self.sops_by_bits.get(bits, 0.0) + used
        else:
            self.macs += every

    def add_neurons(self, kind: str, neuron_steps: float) -> None:
        mul, add = NOP_PER_NEURON[kind]
        self.nop_mul += mul * neuron_steps
        self.nop_add += add * neuron_steps

    def __iadd__(self, other: "OpCounts") -> "OpCounts":
        self.sops += other.sops
        self.macs += other.macs
        self.nop_mul += other.nop_mul
        self.nop_add += other.nop_add
        for bits, n in other.sops_by_bits.items():
            self.sops_by_bits[bits] = self.sops_by_bits.get(bits, 0.0) + n
        self.layers += other.layers
        return self

    def per_sample(self, samples: int) -> "OpCounts":
        """Every count divided by ``samples``."""
        return OpCounts(self.sops / samples, self.macs / samples, self.nop_mul / samples, self.nop_add / samples,
                        {b: n / samples for b, n in self.sops_by_bits.items()},
                        [(name, kind, v / samples) for name, kind, v in self.layers])


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


#: Units :func:`format_energy` chooses from, largest first.
ENERGY_UNITS = (("J", 1.0), ("mJ", 1e-3), ("uJ", 1e-6), ("nJ", 1e-9), ("pJ", 1e-12))


def format_energy(joules: float, digits: int = 4) -> str:
    """``joules`` with the unit that puts 1 to 999 in front, ``digits`` significant digits: ``"838.9 nJ"``.

    One function for every command (``train``, ``report``, ``run``), so that a small network's energy
    reads the same everywhere instead of ``0.0007 mJ`` in one place and ``0.839 uJ`` in another.
    """
    joules = float(joules)
    if not np.isfinite(joules) or joules < 0:
        raise ValueError(f"format_energy: joules={joules!r} must be a finite number >= 0")
    if joules == 0:
        return "0 J"
    for unit, scale in ENERGY_UNITS:
        value = float(f"{joules / scale:.{digits}g}")  # rounded first: 999.96 nJ is 1 uJ
        if value >= 1 or unit == "pJ":
            return f"{value:.{digits}g} {unit}"
    raise AssertionError("unreachable")  # pragma: no cover

