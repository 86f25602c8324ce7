"""The frozen model: a list of plain-array ops run with the NumPy/Numba kernels, no autograd.

A frozen model is what :func:`hdlif_ref.deploy.convert.freeze` makes of a trained
network (batch norm folded, Mem-BN re-parameterized, ternary codes, spike
scales folded) and what ``hdlif-ref run`` executes. It runs a whole sequence at
once: every array is ``[T, N, ...]``; synapses fold ``T`` into the batch.

Ops (``kind``; parameters are ndarrays, settings are Python values):

* ``synapse``: ``y = (x (*) W) * scale + bias`` for a convolution (``conv=True``) or a
  linear layer. ``W`` is float32 weights or the integer codes of a binary/ternary
  synapse; ``scale`` and ``bias`` are per output channel ``[C]`` or per step and
  channel ``[T, C]`` and hold everything folded into them (the weight scale
  ``a_c`` of E11/E12, batch norm, Mem-BN's ``alpha*`` and ``-beta*`` of E10, the step
  ``s`` of the ``n``-bit spikes coming in, E13).
* ``affine``: ``y = x * scale + bias`` (``[C]`` or ``[T, C]``), where a fold was impossible.
* ``neuron``: HD-LIF (E1-E2), LIF (E7, hard or soft reset) or Parallel HD-LIF (E8),
  ``lam``/``theta`` ``[T, C]`` (``C = 1`` per layer); with ``bits`` the output is the
  integer spike ``clip(round(s* / step), 0, 2^n - 1)`` (E13; ``step`` folds downstream).
* ``avg_pool``, ``max_pool``, ``global_avg_pool``, ``flatten``: as their layers.
* ``seca1``, ``seca2``, ``tap``: SECA attention (E14, E15); a tap records the current
  for the SECA_II that reads it.
* ``block``: residual block, ``post(main(x) + shortcut(x))`` with three op lists.
* ``scale``: ``x * value`` (a spike step that no synapse could absorb, e.g. an identity shortcut).
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..kernels.channel_conv import conv1d_channels_forward
from ..kernels.conv import conv2d_forward
from ..kernels.finite import count_nonzero
from ..kernels.hdlif import hdlif_forward
from ..kernels.inference import (EXACT_FLOAT32, conv_levels, hdlif_levels, levels_output_shape, scale_shift_,
                                 spike_levels_)
from ..kernels.lif import lif_forward
from ..kernels.linear import linear_forward
from ..kernels.parallel import parallel_hdlif_forward
from ..kernels.pool import avg_pool2d_forward, max_pool2d_forward
from .counts import OpCounts, synapse_pairs


@dataclass
class Op:
    """One frozen operation: ``kind``, settings in ``attrs``, arrays in ``arrays``; ``children`` for blocks."""

    kind: str
    attrs: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    children: dict[str, list["Op"]] = field(default_factory=dict)


def _per_step(p: np.ndarray, ndim: int) -> np.ndarray:
    """``[C]`` or ``[T, C]`` -> broadcastable against ``[T, N, C, ...]`` of ``ndim`` dims."""
    tail = (1,) * (ndim - 3)
    if p.ndim == 1:
        return p.reshape((1, 1, -1) + tail)
    return p.reshape((p.shape[0], 1, p.shape[1]) + tail)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


def _conv1d_channels(z: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``out[n, c] = sum_k w[k] z[n, c + k - K//2]`` with zero padding (SPEC E14), the layers' kernel."""
    return conv1d_channels_forward(np.ascontiguousarray(z), np.ascontiguousarray(w, dtype=z.dtype))


#: The integer synapse (:func:`~hdlif_ref.kernels.inference.conv_levels`, event-driven) runs when at most
#: ``C_out * INTEGER_DENSITY_PER_CHANNEL`` of its inputs are non-zero; denser inputs take the float32
#: convolution, which is exact on the same levels too (docs/performance.md, "Integer inference").
INTEGER_DENSITY_PER_CHANNEL = 1.0 / 256


def _power_of_two(n: int) -> bool:
    return n >= 1 and not n & (n - 1)


def integer_inputs(ops: list[Op], levels: tuple[int, int] | None = None,
                   plan: dict[int, tuple[int, int]] | None = None) -> tuple[dict[int, tuple[int, int]],
                                                                            tuple[int, int] | None]:
    """Which synapses receive exact integer spike levels, derived from the op list alone.

    ``levels = (divisor, max_level)`` describes what flows between ops: ``level / divisor`` with
    integer ``0 <= level <= divisor * max_level``. A neuron with ``bits`` (SPEC E13) or a LIF (E7,
    binary) emits levels ``(1, 2^n - 1)`` (``(1, 1)``); average pooling multiplies the divisor by its
    window (a power of two, or the levels are lost); max pooling, flattening and a tap keep them;
    anything else (a synapse, an affine, SECA, global pooling) ends them. A dense (``groups = 1``)
    convolution with ternary or binary codes that receives levels, and whose
    ``fan_in * divisor * max_level`` stays below 2^24, is planned as an integer synapse. Returns
    ``({id(op): (divisor, max_level)}, levels after the ops)``.
    """
    plan = {} if plan is None else plan
    for op in ops:
        kind, a = op.kind, op.attrs
        if kind == "synapse":
            if (levels is not None and a.get("conv") and int(a.get("groups", 1)) == 1
                    and a.get("weight_mode") in ("ternary", "binary")):
                divisor, top = levels
                fan_in = int(np.prod(op.arrays["weight"].shape[1:]))
                if fan_in * divisor * top < EXACT_FLOAT32:
                    plan[id(op)] = levels
            levels = None
        elif kind == "neuron":
            bits = int(a.get("bits") or 0)
            levels = (1, 2 ** bits - 1) if bits else ((1, 1) if a.get("neuron") == "lif" else None)
        elif kind == "avg_pool":
            area = int(a["kernel"][0]) * int(a["kernel"][1])
            levels = (levels[0] * area, levels[1]) if levels is not None and _power_of_two(area) else None
        elif kind in ("max_pool", "flatten", "tap"):
            pass
        elif kind == "block":
            integer_inputs(op.children["main"], levels, plan)
            integer_inputs(op.children["shortcut"], levels, plan)
            _, levels = integer_inputs(op.children["post"], None, plan)
        else:
            levels = None
    return plan, levels


class FrozenModel:
    """A frozen network: ``ops`` run in order on ``[T, N, ...]`` arrays; see the module docstring.

    ``integer`` (default True): synapses fed integer spike levels run the exact integer kernel where
    it is faster (:func:`integer_inputs`); False runs every synapse as a float convolution (the
    reference: the same bits, tested).
    """

    #: False: every op's output is a new array at every run (the reference for the kept outputs, tested).
    REUSE_BUFFERS = True

    def __init__(self, ops: list[Op], T: int, num_classes: int, input_shape: tuple[int, ...], meta: dict,
                 dtype=np.float32):
        self.ops, self.T, self.num_classes = ops, int(T), int(num_classes)
        self.dtype = np.dtype(dtype)
        self.input_shape, self.meta = tuple(input_shape), dict(meta)
        self.counts: OpCounts | None = None
        self.integer = True
        self._weights: dict = {}
        self._taps: dict[int, np.ndarray] = {}
        self._levels = integer_inputs(ops)[0]
        #: Outputs of the heavy ops (synapses, neurons) kept from one run to the next and written again
        #: (docs/performance.md, "Deployed inference"): fresh arrays of a few MiB each cost the process
        #: a page fault per 4 KiB every run once the allocator has returned them to the system.
        #: ``REUSE_BUFFERS = False`` (class attribute) allocates every output afresh (the reference).
        self._buffers: dict[tuple, np.ndarray] = {}
        self._running = threading.Lock()

    # ------------------------------------------------------------------ running
    def run(self, x: np.ndarray, count: bool = False) -> np.ndarray:
        """Logits ``[T, N, classes]`` for images ``[N, C, H, W]`` (repeated over steps) or frames ``[T, N, C, H, W]``."""
        x = np.asarray(x, dtype=self.dtype)
        if x.ndim == len(self.input_shape) + 1:
            if x.shape[1:] != self.input_shape:
                raise ValueError(f"run: input samples have shape {x.shape[1:]}, the model takes {self.input_shape}")
            x = np.broadcast_to(x, (self.T,) + x.shape)  # stride 0 over T: the first synapse runs once
        elif x.ndim == len(self.input_shape) + 2:
            if x.shape[0] != self.T or x.shape[2:] != self.input_shape:
                raise ValueError(f"run: input {x.shape} is not [T={self.T}, N, {', '.join(map(str, self.input_shape))}]")
        else:
            raise ValueError(f"run: input of shape {x.shape}; expected [N, {', '.join(map(str, self.input_shape))}] "
                             f"or [T, N, ...]")
        with self._running:  # one run at a time: the runs share the kept outputs
            self.counts = OpCounts() if count else None  # summed over batch and steps
            self._taps = {}
            out = self._run_ops(self.ops, x if x.strides[0] == 0 and self.T > 1 else np.ascontiguousarray(x))
            self._taps = {}
            # the logits are the caller's: never a kept array (the next run would overwrite them)
            return out.copy() if self._is_kept(out) else out

    def predict(self, x: np.ndarray) -> np.ndarray:
        """``argmax_c mean_t o_t`` (SPEC E16)."""
        return self.run(x).mean(axis=0).argmax(axis=1)

    def _run_ops(self, ops: list[Op], x: np.ndarray) -> np.ndarray:
        for op in ops:
            x = getattr(self, "_" + op.kind)(op, x)
        return x

    def __getstate__(self) -> dict:
        """Copies and pickles carry the model, not its lock or its kept outputs (each copy keeps its own)."""
        state = dict(self.__dict__)
        state.pop("_running", None)
        state["_buffers"], state["_taps"] = {}, {}
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._running = threading.Lock()

    def _buffer(self, op: Op, role: str, shape: tuple, dtype) -> np.ndarray | None:
        """The kept output ``role`` of ``op`` as a C-contiguous array of ``shape`` and ``dtype`` (contents
        undefined), or ``None`` with ``REUSE_BUFFERS`` off: the caller then allocates. The kept array is
        flat and as large as the largest output asked for, so that a smaller batch (a data set's last)
        reuses it too instead of replacing it twice per pass."""
        if not self.REUSE_BUFFERS:
            return None
        key, size = (id(op), role), math.prod(shape)
        kept = self._buffers.get(key)
        if kept is None or kept.dtype != dtype or kept.size < size:
            kept = self._buffers[key] = np.empty(size, dtype=dtype)
        return kept[:size].reshape(shape)

    def _is_kept(self, a: np.ndarray) -> bool:
        """Whether ``a`` is, or is a view of, a kept output."""
        while isinstance(a.base, np.ndarray):
            a = a.base
        return any(a is kept for kept in self._buffers.values())

    def _weight(self, op: Op, dtype: np.dtype) -> np.ndarray:
        """The synapse's weights (or integer codes) as a contiguous ``dtype`` array, cast once."""
        key = (id(op), np.dtype(dtype))
        if key not in self._weights:
            self._weights[key] = np.ascontiguousarray(op.arrays["weight"], dtype=dtype)
        return self._weights[key]

    def _synapse(self, op: Op, x: np.ndarray) -> np.ndarray:
        T, n = x.shape[:2]
        if self.counts is not None:
            self._count_synapse(op, np.ascontiguousarray(x.reshape((T * n,) + x.shape[2:])))
        if T > 1 and x.strides[0] == 0:
            # every step is the same image (direct encoding): the synapse runs on one step, and only the
            # per-step scale and shift (batch norm folded per step, E16 DC) differ between steps
            y1 = self._raw_synapse(op, np.ascontiguousarray(x[0]))
            y = self._buffer(op, "y", (T,) + y1.shape, y1.dtype)
            y = np.empty((T,) + y1.shape, dtype=y1.dtype) if y is None else y
            y[...] = y1
            return scale_shift_(y, op.arrays["scale"], op.arrays["bias"])
        levels = self._levels.get(id(op)) if self.integer else None
        if levels is not None:
            limit = min(1.0, op.arrays["weight"].shape[0] * INTEGER_DENSITY_PER_CHANNEL)
            if count_nonzero(x) <= limit * x.size:  # sparse enough for the event-driven kernel
                stride, padding = tuple(op.attrs["stride"]), tuple(op.attrs["padding"])
                shape = levels_output_shape(x.shape, op.arrays["weight"].shape, stride, padding)
                return conv_levels(np.ascontiguousarray(x), op.arrays["weight"], levels[0], stride, padding,
                                   op.arrays["scale"], op.arrays["bias"], out=self._buffer(op, "y", shape, x.dtype))
        y = self._raw_synapse(op, np.ascontiguousarray(x.reshape((T * n,) + x.shape[2:])))
        # y is ours (a fresh kernel output): scale and shift it in place, in one pass
        return scale_shift_(y.reshape((T, n) + y.shape[1:]), op.arrays["scale"], op.arrays["bias"])

    def _raw_synapse(self, op: Op, flat: np.ndarray) -> np.ndarray:
        """``flat (*) W`` on ``[B, ...]`` without scale and bias (float convolution or GEMM)."""
        w = self._weight(op, flat.dtype)
        if op.attrs["conv"]:
            return conv2d_forward(flat, w, None, tuple(op.attrs["stride"]), tuple(op.attrs["padding"]),
                                  int(op.attrs["groups"]))
        return linear_forward(flat, w, None)

    def _count_synapse(self, op: Op, flat: np.ndarray) -> None:
        a, out = op.attrs, op.arrays["weight"].shape[0]
        conv = dict(kernel=op.arrays["weight"].shape[2:], stride=a["stride"], padding=a["padding"],
                    groups=a["groups"]) if a["conv"] else None
        used, every = synapse_pairs(flat, out, conv)
        self.counts.add_synapse(used, every, a["input_is_spikes"], int(a["input_bits"]))

    def _affine(self, op: Op, x: np.ndarray) -> np.ndarray:
        return x * _per_step(op.arrays["scale"], x.ndim) + _per_step(op.arrays["bias"], x.ndim)

    def _scale(self, op: Op, x: np.ndarray) -> np.ndarray:
        return x * np.asarray(op.attrs["value"], dtype=x.dtype)

    def _neuron(self, op: Op, x: np.ndarray) -> np.ndarray:
        T, n = x.shape[:2]
        I = np.ascontiguousarray(x.reshape(T, n, -1))
        theta = op.arrays["theta"].astype(x.dtype)
        u0 = np.zeros(I.shape[1:], dtype=x.dtype)
        kind = op.attrs["neuron"]
        s = self._buffer(op, "s", I.shape, I.dtype)
        bits = int(op.attrs["bits"] or 0)
        if kind == "hdlif" and bits:  # the spikes' integer levels (E13) straight from the neuron's pass
            out = None if s is None else (s, self._buffer(op, "u", u0.shape, I.dtype))
            s, _ = hdlif_levels(I, u0, op.arrays["lam"].astype(x.dtype), theta, op.attrs["step"], 2 ** bits - 1,
                                out=out)
            bits = 0  # already levels
        elif kind == "hdlif":
            out = None if s is None else (s, self._buffer(op, "u", u0.shape, I.dtype),
                                          self._buffer(op, "mask", I.shape, np.bool_))
            s, _, _ = hdlif_forward(I, u0, op.arrays["lam"].astype(x.dtype), theta, out=out)
        elif kind == "lif":
            out = None if s is None else (s, self._buffer(op, "u", u0.shape, I.dtype),
                                          self._buffer(op, "m", I.shape, I.dtype))
            s, _, _ = lif_forward(I, u0, op.arrays["lam"].astype(x.dtype), theta, op.attrs["reset"] == "soft",
                                  out=out)
        else:
            s, _ = parallel_hdlif_forward(I, theta, out=None if s is None else (s, self._buffer(op, "mask", I.shape,
                                                                                                  np.bool_)))
        if self.counts is not None:
            self.counts.add_neurons(kind, I.size)
        if bits:
            s = spike_levels_(s, op.attrs["step"], 2 ** bits - 1)  # integer spikes (E13)
        return s.reshape(x.shape)

    def _avg_pool(self, op: Op, x: np.ndarray) -> np.ndarray:
        return self._pool(avg_pool2d_forward, op, x)

    def _max_pool(self, op: Op, x: np.ndarray) -> np.ndarray:
        return self._pool(max_pool2d_forward, op, x)

    def _pool(self, kernel, op: Op, x: np.ndarray) -> np.ndarray:
        T, n = x.shape[:2]
        flat = np.ascontiguousarray(x.reshape((T * n,) + x.shape[2:]))
        (kh, kw), (sh, sw), (ph, pw) = op.attrs["kernel"], op.attrs["stride"], op.attrs["padding"]
        y = kernel(flat, kh, kw, sh, sw, ph, pw)
        y = y[0] if isinstance(y, tuple) else y
        return y.reshape((T, n) + y.shape[1:])

    def _global_avg_pool(self, op: Op, x: np.ndarray) -> np.ndarray:
        return x.mean(axis=(3, 4), keepdims=True)

    def _flatten(self, op: Op, x: np.ndarray) -> np.ndarray:
        return x.reshape(x.shape[:2] + (-1,))

    def _gap(self, x: np.ndarray) -> np.ndarray:
        flat = x.reshape((-1,) + x.shape[2:])
        return flat.mean(axis=(2, 3)) if flat.ndim == 4 else flat

    def _attend(self, x: np.ndarray, logits: np.ndarray) -> np.ndarray:
        a = _sigmoid(logits).reshape(x.shape[:3] + (1,) * (x.ndim - 3))
        return x * a

    def _seca1(self, op: Op, x: np.ndarray) -> np.ndarray:
        return self._attend(x, _conv1d_channels(self._gap(x), op.arrays["weight"].astype(x.dtype)))

    def _tap(self, op: Op, x: np.ndarray) -> np.ndarray:
        self._taps[int(op.attrs["id"])] = x
        return x

    def _seca2(self, op: Op, x: np.ndarray) -> np.ndarray:
        pre = self._gap(self._taps[int(op.attrs["tap"])])
        c_pre, c_post = pre.shape[1], x.shape[2]
        if c_pre > c_post:
            pre = pre.reshape(pre.shape[0], c_post, c_pre // c_post).mean(axis=2)
        elif c_post > c_pre:
            pre = np.repeat(pre, c_post // c_pre, axis=1)
        logits = (_conv1d_channels(self._gap(x), op.arrays["weight"].astype(x.dtype))
                  + _conv1d_channels(pre, op.arrays["weight_pre"].astype(x.dtype)))
        return self._attend(x, logits)

    def _block(self, op: Op, x: np.ndarray) -> np.ndarray:
        main = self._run_ops(op.children["main"], x)
        shortcut = self._run_ops(op.children["shortcut"], x)
        return self._run_ops(op.children["post"], main + shortcut)

    # ------------------------------------------------------------------ payload
    def payload_bytes(self) -> int:
        """Bytes of the parameters as stored: ternary codes 2 bits, binary codes 1 bit, the rest float32."""
        def weight_bytes(op: Op, name: str, a: np.ndarray) -> int:
            mode = op.attrs.get("weight_mode", "fp32") if op.kind == "synapse" and name == "weight" else "fp32"
            return {"ternary": (a.size + 3) // 4, "binary": (a.size + 7) // 8}.get(mode, a.size * 4)

        def walk(ops: list[Op]) -> int:
            total = 0
            for op in ops:
                total += sum(weight_bytes(op, name, a) for name, a in op.arrays.items())
                total += sum(walk(children) for children in op.children.values())
            return total
        return walk(self.ops)
